"""The peers fastst is compared with, re-implemented here from their published designs (papers and
documentation; none of their code is copied), so that benchmarks/compare.py times them in the same
process, on the same machine and inputs.

1. `JohnsonNet` + `JohnsonTrainer`: the feed-forward stylizer of pytorch/examples' fast_neural_style,
   which implements Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
   Super-Resolution" (ECCV 2016) with two documented changes: instance normalisation (Ulyanov,
   Vedaldi & Lempitsky, "Instance Normalization: The Missing Ingredient for Fast Stylization", 2016)
   and nearest-neighbour upsampling followed by a convolution instead of fractionally strided
   convolutions (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016). Layers:
   reflection-padded convs 9x9/32, 3x3/64 stride 2, 3x3/128 stride 2, each with InstanceNorm2d(affine)
   and ReLU; 5 residual blocks (conv-IN-ReLU-conv-IN plus identity); upsample x2 + conv 3x3 to 64 and
   to 32 (IN + ReLU); a final 9x9 conv to 3 channels with no norm and no output nonlinearity. Images
   are in the 0-255 range. Training: VGG16 features up to relu4_3 (all four slices computed for
   both the output and the input batch) on ImageNet-normalised images, content loss at relu2_2, style
   loss at relu1_2, relu2_2, relu3_3, relu4_3 on Gram matrices divided by c*h*w, both MSE, weights
   1e5 and 1e10, Adam lr 1e-3, batch 4, 256 px, fp32, eager.

2. `tutorial_gatys`: the PyTorch tutorial "Neural Transfer Using PyTorch" (pytorch.org tutorials),
   itself after Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks"
   (CVPR 2016): VGG19 features behind an ImageNet normalisation module; the model is rebuilt per run
   as a Sequential into which a content-loss module is inserted after conv_4 and style-loss modules
   after conv_1..conv_5, each target computed by running the partly built network on the content or
   style image at the moment the module is inserted; the network is cut after the last loss module.
   The tutorial numbers convolutions in order, so these are conv1_1, conv1_2, conv2_1, conv2_2
   (content) and conv3_1: it runs 5 of VGG19's convs, about 58 GFLOP forward at 512x512, where
   Gatys et al.'s layers (up to relu5_1, as in gatys.optimize) need about 2.6 times that;
   L-BFGS (torch defaults: lr 1, 20 iterations per step, no line search) on the image pixels,
   starting from the content image, clamping the image to [0, 1] in every evaluation; style weight
   1e6, content weight 1. The evaluation count is capped exactly (the tutorial overshoots by up to
   one L-BFGS step) so that both sides do the same number of evaluations.

Loss-network weights: there is no download here, so the VGG19 of (2) is randomly initialised
(torchvision's initialisation scheme); that changes no operation count, only the picture. The VGG16 of
(1) takes the vgg16-caffe conv weights fastst uses when they are available (same architecture), else
random ones; either way the timing is the same.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# VGG configurations D (VGG16) and E (VGG19) of Simonyan & Zisserman, 2015 ("M": 2x2 max pool).
VGG16_TO_RELU4_3 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


# ------------------------------------------------------------------------ (1) fast_neural_style

class _ConvLayer(nn.Module):
    """fast_neural_style's ConvLayer (and, with `upsample`, its UpsampleConvLayer): nearest-neighbour ×2
    upsampling if asked, reflection padding of k//2, then a k x k conv. Attribute names are the
    published ones, so state dicts load into the original and into `fastst convert`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class _Residual(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.in1 = _ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = _ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class JohnsonNet(nn.Module):
    """fast_neural_style's transformer: (N,3,H,W) in 0-255 -> (N,3,H,W) unbounded, nominally 0-255.
    Its state dict has the published names (conv1.conv2d.weight, in1.weight, res1…res5, deconv1…3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.in1 = _ConvLayer(3, 32, 9), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = _ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = _ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (_Residual(128) for _ in range(5))
        self.deconv1, self.in4 = _ConvLayer(128, 64, 3, upsample=True), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = _ConvLayer(64, 32, 3, upsample=True), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = _ConvLayer(32, 3, 9)

    def residual_blocks(self) -> list[_Residual]:
        return [self.res1, self.res2, self.res3, self.res4, self.res5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.in1(self.conv1(x)))
        x = F.relu(self.in2(self.conv2(x)))
        x = F.relu(self.in3(self.conv3(x)))
        for block in self.residual_blocks():
            x = block(x)
        x = F.relu(self.in4(self.deconv1(x)))
        x = F.relu(self.in5(self.deconv2(x)))
        return self.deconv3(x)


def johnson_from_fastst(net: nn.Module, style: int = 0) -> JohnsonNet:
    """A JohnsonNet carrying a fastst TransformerNet's conv weights and one style's norm scale/shift.

    The layers match one to one except at the end: fastst normalises the final conv's output and
    applies a sigmoid, the peer returns the final conv's output. Fed the same image (0-255 for the
    peer, 0-1 for fastst: the first instance norm removes the factor), the peer's output therefore
    equals the output of fastst's final conv (`net.out.conv`)."""
    peer = JohnsonNet()
    pairs = [(peer.conv1.conv2d, peer.in1, net.down[0]), (peer.conv2.conv2d, peer.in2, net.down[1]),
             (peer.conv3.conv2d, peer.in3, net.down[2]), (peer.deconv1.conv2d, peer.in4, net.up[0]),
             (peer.deconv2.conv2d, peer.in5, net.up[1])]
    for block, theirs in zip(peer.residual_blocks(), net.residual):
        pairs += [(block.conv1.conv2d, block.in1, theirs.a), (block.conv2.conv2d, block.in2, theirs.b)]
    with torch.no_grad():
        for conv, norm, layer in pairs:
            conv.weight.copy_(layer.conv.weight)
            conv.bias.copy_(layer.conv.bias)
            norm.weight.copy_(layer.norm.scale[style])
            norm.bias.copy_(layer.norm.shift[style])
        peer.deconv3.conv2d.weight.copy_(net.out.conv.weight)
        peer.deconv3.conv2d.bias.copy_(net.out.conv.bias)
    return peer


def vgg_layers(config: Sequence[int | str]) -> nn.Sequential:
    """3x3 conv + ReLU per number, 2x2 max pool per 'M' (torchvision's `features` layout and init)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            conv = nn.Conv2d(cin, int(v), 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            cin = int(v)
    return nn.Sequential(*layers)


class VGG16Slices(nn.Module):
    """VGG16 features up to relu4_3 returning relu1_2, relu2_2, relu3_3, relu4_3 (every slice runs)."""

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        features = vgg_layers(VGG16_TO_RELU4_3)
        if state is not None:
            features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < len(features)})
        self.slices = nn.ModuleList([features[0:4], features[4:9], features[9:16], features[16:23]])
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x)
        return out


def imagenet_normalize(batch_255: torch.Tensor) -> torch.Tensor:
    """0-255 RGB -> ImageNet-normalised input, as the peer's training does."""
    mean = batch_255.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = batch_255.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (batch_255 / 255.0 - mean) / std


def peer_gram(y: torch.Tensor) -> torch.Tensor:
    """Gram matrices divided by c*h*w."""
    b, c, h, w = y.shape
    f = y.reshape(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


class JohnsonTrainer:
    """fast_neural_style's training step, fp32 eager: transformer, VGG16 on output and input, losses, Adam."""

    def __init__(self, style_01: torch.Tensor, batch: int = 4, device: str | torch.device = "cpu",
                 vgg_state: Mapping[str, torch.Tensor] | None = None, content_weight: float = 1e5,
                 style_weight: float = 1e10, lr: float = 1e-3) -> None:
        self.device = torch.device(device)
        torch.manual_seed(0)
        self.net = JohnsonNet().to(self.device).train()
        self.vgg = VGG16Slices(vgg_state).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr)
        self.content_weight, self.style_weight = content_weight, style_weight
        with torch.no_grad():
            style = (style_01.to(self.device) * 255).unsqueeze(0).repeat(batch, 1, 1, 1)
            self.gram_style = [peer_gram(f) for f in self.vgg(imagenet_normalize(style))]

    def step(self, x_255: torch.Tensor) -> float:
        """One optimisation step on a batch in 0-255; returns the total loss."""
        n = x_255.shape[0]
        self.optimizer.zero_grad()
        y = self.net(x_255)
        features_y = self.vgg(imagenet_normalize(y))
        features_x = self.vgg(imagenet_normalize(x_255))
        content = self.content_weight * F.mse_loss(features_y[1], features_x[1])
        style = 0.0
        for fy, gs in zip(features_y, self.gram_style):
            style = style + F.mse_loss(peer_gram(fy), gs[:n])
        total = content + self.style_weight * style
        total.backward()
        self.optimizer.step()
        return float(total.detach())


# ------------------------------------------------------------------------------ (2) the tutorial

class _Normalization(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(-1, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def _tutorial_gram(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.shape
    f = x.reshape(a * b, c * d)
    return (f @ f.t()) / (a * b * c * d)


class _ContentLoss(nn.Module):
    """Transparent layer that records the MSE to a fixed (detached) feature target."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


class _StyleLoss(nn.Module):
    """Transparent layer that records the MSE between Gram matrices and a fixed Gram target."""

    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = _tutorial_gram(target_feature).detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(_tutorial_gram(x), self.target)
        return x


def vgg19_features(seed: int = 0) -> nn.Sequential:
    """VGG19 `features`, randomly initialised (no pretrained download here: timing only)."""
    torch.manual_seed(seed)
    return vgg_layers(VGG19_CONFIG).eval()


def tutorial_model(cnn: nn.Sequential, content: torch.Tensor, style: torch.Tensor,
                   content_layers: Sequence[str] = ("conv_4",),
                   style_layers: Sequence[str] = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"),
                   ) -> tuple[nn.Sequential, list[_StyleLoss], list[_ContentLoss]]:
    """Rebuild the network with loss modules inserted, computing each target as it is inserted."""
    model = nn.Sequential(_Normalization().to(content.device))
    content_losses: list[_ContentLoss] = []
    style_losses: list[_StyleLoss] = []
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        else:
            raise RuntimeError(f"unexpected layer {type(layer).__name__}")
        model.add_module(name, layer)
        if name in content_layers:
            loss = _ContentLoss(model(content).detach())
            model.add_module(f"content_loss_{i}", loss)
            content_losses.append(loss)
        if name in style_layers:
            loss = _StyleLoss(model(style).detach())
            model.add_module(f"style_loss_{i}", loss)
            style_losses.append(loss)
    last = max(j for j, m in enumerate(model) if isinstance(m, (_ContentLoss, _StyleLoss)))
    return model[: last + 1], style_losses, content_losses


def tutorial_gatys(cnn: nn.Sequential, content: torch.Tensor, style: torch.Tensor, evaluations: int = 300,
                   style_weight: float = 1e6, content_weight: float = 1.0) -> tuple[torch.Tensor, int]:
    """The tutorial's run_style_transfer with an exact evaluation budget: (1,3,H,W) content and style
    of equal size in [0, 1] -> (stylized image, evaluations done)."""
    with torch.no_grad():
        model, style_losses, content_losses = tutorial_model(cnn, content, style)
    image = content.clone().requires_grad_(True)
    model.eval().requires_grad_(False)
    optimizer = torch.optim.LBFGS([image])
    done = 0

    def closure() -> torch.Tensor:
        nonlocal done
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        model(image)
        style_score = style_weight * sum(sl.loss for sl in style_losses)
        content_score = content_weight * sum(cl.loss for cl in content_losses)
        loss = style_score + content_score
        loss.backward()
        done += 1
        return loss

    while done < evaluations:
        left = min(20, evaluations - done)
        optimizer.param_groups[0]["max_iter"] = left
        optimizer.param_groups[0]["max_eval"] = left
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
    return image.detach(), done
