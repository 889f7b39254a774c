"""Is the embedded dataset learnable? A tiny CNN trained from scratch, evaluated with the Market protocol.

    python experiments/dataset_learnability.py DATASET_ROOT EPOCHS

4 conv blocks (32-64-128-256 channels, ~1.2M parameters) at 64x32 input, cross-entropy with label
smoothing 0.1 on the relabelled training ids, SGD (Nesterov, momentum 0.9, wd 5e-4), one-cycle lr 0.05,
batch 32, flip + pad-crop; features = pooled 256-d (+ flipped), cosine distance, query vs gallery with
the same protocol as experiments/dataset_difficulty.py. Seeded (torch.manual_seed(0); numpy's global RNG
for the crops is not seeded, so figures can vary slightly between runs).
"""
import sys, time, re, numpy as np, cv2, torch, torch.nn as nn, torch.nn.functional as F, torchvision
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from dataset_difficulty import load, evaluate
from pathlib import Path
torch.set_num_threads(2); torch.manual_seed(0)
root = Path(sys.argv[1]); epochs = int(sys.argv[2])
tp, tpid, tcam = load(root / "bounding_box_train")
labels = {p: i for i, p in enumerate(sorted(set(tpid)))}
def arr(paths):
    x = np.stack([cv2.imread(str(p))[:, :, ::-1] for p in paths]).astype(np.float32) / 255.0
    x = (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    t = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float32)
    return F.interpolate(t, size=(64, 32), mode="area")
X = arr(tp); Y = torch.tensor([labels[p] for p in tpid])
def block(i, o): return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2))
class Net(nn.Module):
    def __init__(s, n):
        super().__init__(); s.f = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 256), nn.AdaptiveAvgPool2d(1), nn.Flatten()); s.fc = nn.Linear(256, n)
    def forward(s, x): return s.fc(s.f(x))
net = Net(len(labels))
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
steps = epochs * ((len(X) + 31) // 32); sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=steps)
t0 = time.time()
for ep in range(epochs):
    net.train(); perm = torch.randperm(len(X)); tot = 0
    for i in range(0, len(X), 32):
        idx = perm[i:i + 32]; xb = X[idx]
        if True:  # flip + pad-crop
            flip = torch.rand(len(xb)) < 0.5; xb[flip] = xb[flip].flip(3)
            xb = F.pad(xb, (3, 3, 3, 3), mode="reflect"); dy, dx = np.random.randint(0, 7, 2); xb = xb[:, :, dy:dy + 64, dx:dx + 32]
        loss = F.cross_entropy(net(xb), Y[idx], label_smoothing=0.1)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step(); tot += loss.item() * len(idx)
    print(f"epoch {ep} loss {tot / len(X):.3f} {time.time() - t0:.0f}s", flush=True)
net.eval(); net.fc = nn.Identity()
def feats(paths):
    with torch.no_grad():
        x = arr(paths); f = torch.cat([net(x[i:i + 128]) + net(x[i:i + 128].flip(3)) for i in range(0, len(x), 128)])
    return F.normalize(f, dim=1).numpy()
qp, qpid, qcam = load(root / "query"); gp, gpid, gcam = load(root / "bounding_box_test")
qf, gf = feats(qp), feats(gp)
r1, mAP = evaluate(1 - qf @ gf.T, qpid, qcam, gpid, gcam)
print(f"4-block CNN (1.2M params) from scratch at 64x32, {epochs} epochs: Rank@1 {r1:.3f} mAP {mAP:.3f}")
