"""Bringing a style stack to the content's pixel size and image size.

Style transfer matches Gram matrices, i.e. the statistics of texture at the scales the
VGG layers see, in pixels. A style stack recorded at another pixel size carries its
texture at the wrong scale, so it is first resampled to the content's pixel size (when
both are known). Gram matrices do not depend on where in the image a texture sits, so an
image of another size is then centre-cropped, or reflect-padded, to the content's size:
neither changes the pixel size again, unlike stretching the image to fit (which is what
the paper's code did: it resized every style image to the content's size).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PIXEL_TOLERANCE", "match_style"]

#: Relative pixel-size difference below which no resampling is done.
PIXEL_TOLERANCE = 0.005


def match_style(
    style: np.ndarray,
    style_pixel: float,
    content_shape: tuple[int, int],
    content_pixel: float,
) -> tuple[np.ndarray, str | None]:
    """The style stack at the content's pixel size and ``(Y, X)`` size.

    Parameters
    ----------
    style
        ``(n_tilts, Y, X)`` style tilt series.
    style_pixel, content_pixel
        Pixel sizes in Å; 0 = unknown (then no resampling is possible).
    content_shape
        ``(Y, X)`` of the content tilts.

    Returns
    -------
    stack
        float32 ``(n_tilts, *content_shape)``, or ``style`` itself when it already fits.
    note
        What was done, for the user (None when nothing was).
    """
    steps = []
    out = style
    same_pixel = abs(style_pixel - content_pixel) <= PIXEL_TOLERANCE * max(content_pixel, 1e-12)
    if style_pixel > 0 and content_pixel > 0 and not same_pixel:
        factor = style_pixel / content_pixel
        size = tuple(max(1, round(n * factor)) for n in style.shape[1:])
        out = _resample(out, size)
        steps.append(
            f"resampled from {style_pixel:g} to {content_pixel:g} Å pixels "
            f"({style.shape[2]}x{style.shape[1]} -> {size[1]}x{size[0]})"
        )
    elif out.shape[1:] != tuple(content_shape) and not (style_pixel > 0 and content_pixel > 0):
        steps.append("not resampled (a pixel size is unknown)")
    if out.shape[1:] != tuple(content_shape):
        out, how = _fit(out, content_shape)
        steps.append(f"{how} to {content_shape[1]}x{content_shape[0]}")
    if not steps or steps == ["not resampled (a pixel size is unknown)"]:
        return style, None
    return out, "style stack " + ", ".join(steps) + " to match the content"


def _resample(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Per-tilt antialiased bicubic resampling to ``size`` (Y, X), float32."""
    tilts = []
    for tilt in stack:  # one tilt at a time keeps memory at a few tilts
        image = torch.from_numpy(np.asarray(tilt, dtype=np.float32).copy())[None, None]
        resized = torch.nn.functional.interpolate(
            image, size=size, mode="bicubic", antialias=True, align_corners=False
        )
        tilts.append(resized[0, 0].numpy())
    return np.stack(tilts)


def _fit(stack: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Centre-crop axes that are too long, reflect-pad axes that are too short."""
    out = np.asarray(stack, dtype=np.float32)
    how = set()
    for axis, want in ((1, shape[0]), (2, shape[1])):
        have = out.shape[axis]
        if have > want:
            start = (have - want) // 2
            out = np.take(out, np.arange(start, start + want), axis=axis)
            how.add("cropped")
        elif have < want:
            before = (want - have) // 2
            pad = [(0, 0)] * 3
            pad[axis] = (before, want - have - before)
            # Reflection repeats the texture instead of adding an edge of constant value;
            # "symmetric" also works when the padding is longer than the image.
            out = np.pad(out, pad, mode="symmetric")
            how.add("padded (mirrored)")
    return out, " and ".join(sorted(how))
