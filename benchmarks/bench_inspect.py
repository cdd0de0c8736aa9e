"""``initlab inspect`` on a ResNet-18 (11.7M parameters) with a batch of 8 images of 224x224, timed.

torchvision's wheels on this project's machines do not load with its torch 2.13.0+cpu (the
``torchvision::nms`` operator is missing), so the network is torchvision's ResNet-18 written out
here: the same layers, shapes and initialization (its ``kaiming_normal_(mode="fan_out",
nonlinearity="relu")`` convolutions, BatchNorm ones and zeros, nn.Linear's default head).

Usage: ``python benchmarks/bench_inspect.py`` (writes ``benchmarks/results_inspect.json``).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


def resnet18():
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=False)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
            self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
            self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
            self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, 1000)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    torch.manual_seed(0)
    return ResNet()


def main() -> None:
    from initlab.diagnose import inspect_model

    runs = []
    for _ in range(3):
        model = resnet18()
        started = time.perf_counter()
        inspection = inspect_model(model, input_shape=(3, 224, 224), batch_size=8)
        runs.append(time.perf_counter() - started)
    conv = [p for p in inspection.params if p.kind == "Conv2d"]
    named = sum(p.identified is not None and p.identified["spec"].startswith("torch.kaiming_normal(mode='fan_out'")
                for p in conv)  # fmt: skip
    report = {"machine": platform.processor() or platform.machine(), "parameters": sum(p.numel() for p in model.parameters()),
              "seconds": runs, "conv_weights": len(conv), "conv_weights_named_kaiming_fan_out": named,
              "findings": [str(f) for f in inspection.findings() if f.severity == "fail"]}  # fmt: skip
    Path(__file__).with_name("results_inspect.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
