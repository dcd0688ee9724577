"""Reference side of the PyTorch checkpoint tests: real torch and torchvision write the checkpoints and
compute the features the app must reproduce. Run by test/engine/pth-import.test.ts with /usr/bin/python3.

usage: torchvision-reference.py OUT_DIR APP_INPUTS.npy IMAGE...
writes into OUT_DIR:
  resnet18-seeded.pth         torch.save(torchvision.models.resnet18().state_dict()) after torch.manual_seed(0)
  resnet18-seeded.onnx        the same model through the documented torch.onnx.export route (opset 13)
  feats_app_inputs.npy        torch's pooled features of the app's own preprocessed tensors
  pil_inputs.npy              torchvision's eval transform of each IMAGE (PIL bilinear resize 256, crop 224)
  feats_pil.npy               torch's features of pil_inputs
  resnet50-seeded.pth         a ResNet50 state dict (for the architecture check)
  resnet18-shape-changed.pth  the ResNet18 state dict with layer3.0.conv1.weight reshaped
  resnet18-wrapped.pth        {"state_dict": …, "epoch": 3} as training scripts save it
  evil.pth                    a zip checkpoint whose pickle calls os.system (never to be run)
"""
import os
import pickle
import sys
import zipfile

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

out, app_inputs, images = sys.argv[1], sys.argv[2], sys.argv[3:]
torch.set_num_threads(2)
torch.manual_seed(0)
model = torchvision.models.resnet18().eval()
torch.save(model.state_dict(), os.path.join(out, "resnet18-seeded.pth"))
torch.onnx.export(
    model,
    torch.randn(1, 3, 224, 224),
    os.path.join(out, "resnet18-seeded.onnx"),
    input_names=["input"],
    output_names=["logits"],
    dynamic_axes={"input": {0: "N"}},
    opset_version=13,
)
features = torch.nn.Sequential(*list(model.children())[:-1], torch.nn.Flatten()).eval()
with torch.no_grad():
    x = torch.from_numpy(np.load(app_inputs))
    np.save(os.path.join(out, "feats_app_inputs.npy"), features(x).numpy())
    tf = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    pil = torch.stack([tf(Image.open(f).convert("RGB")) for f in images])
    np.save(os.path.join(out, "pil_inputs.npy"), pil.numpy())
    np.save(os.path.join(out, "feats_pil.npy"), features(pil).numpy())

torch.save(torchvision.models.resnet50().state_dict(), os.path.join(out, "resnet50-seeded.pth"))
sd = model.state_dict()
changed = dict(sd)
changed["layer3.0.conv1.weight"] = torch.zeros(256, 128, 1, 1)
torch.save(changed, os.path.join(out, "resnet18-shape-changed.pth"))
torch.save({"state_dict": sd, "epoch": 3}, os.path.join(out, "resnet18-wrapped.pth"))


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(out, "PWNED"),))


with zipfile.ZipFile(os.path.join(out, "evil.pth"), "w") as z:
    z.writestr("evil/data.pkl", pickle.dumps({"conv1.weight": Evil()}, protocol=2))
    z.writestr("evil/version", "3\n")
