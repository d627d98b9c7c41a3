"""The classic "visualise AlexNet's feature maps" tutorial, ported to tb_featmap.

Logs every channel of AlexNet's five conv layers on matplotlib's Grace Hopper photo, turned
by 0, 10, ..., 90 degrees: the angle is the step, so the tab's step slider turns the photo and
shows how each filter's response follows it. Random weights by default (nothing is
downloaded); ``--weights PATH`` loads a state_dict you have.

    python demo/alexnet.py [--weights alexnet.pth] [--logdir runs/alexnet] [--no-serve] [--port 6006]
"""

import argparse
import sys

import torch
import torchvision
from matplotlib import cbook
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torchvision import transforms

from tb_featmap import FeatureMapRecorder, log_feature_maps
from train import port_in_use, serve_unless  # demo/train.py, beside this file

LAYERS = ["features.0", "features.3", "features.6", "features.8", "features.10"]
ANGLES = range(0, 91, 10)  # degrees; each is logged as the step of that name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="a state_dict file for torchvision's AlexNet")
    parser.add_argument("--logdir", default="runs/alexnet")
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--no-serve", action="store_true", help="log only, do not start TensorBoard")
    args = parser.parse_args()
    if not args.no_serve and port_in_use(args.port):
        parser.error(f"port {args.port} is in use; pick another with --port")

    model = torchvision.models.alexnet(weights=None).eval()
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    preprocess = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        photo = photo.convert("RGB")
        images = torch.stack([preprocess(photo.rotate(angle)) for angle in ANGLES])

    with torch.no_grad(), FeatureMapRecorder(model, LAYERS) as rec:
        model(images)
    with SummaryWriter(args.logdir) as writer:
        for i, angle in enumerate(ANGLES):
            maps = {name: output[i : i + 1] for name, output in rec.outputs.items()}
            stored = log_feature_maps(writer, maps, step=angle)
    for tag, shape in stored.items():
        print(f"{tag}: {shape}")
    print(f"logged steps {ANGLES[0]}..{ANGLES[-1]} (the angle in degrees) to {args.logdir}")
    return serve_unless(args.no_serve, args.logdir, args.port)


if __name__ == "__main__":
    sys.exit(main())
