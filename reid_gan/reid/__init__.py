"""Re-ID models (plain ``nn.Module`` backbones + classifier) and the Lightning system that trains them."""
