"""Camera-trap clips and drone footage: which files are clips, what they say, which frames to take.

``clips``       suffixes, opening a capture, :func:`probe` (frame rate, length, recording time)
``containers``  the recording time from MP4/MOV, AVI, ASF and MKV headers, parsed here
``sampler``     :class:`ClipSampler`: one frame every N seconds or N frames, keyframes first
``stamps``      a frame's time and place (clip start + offset, or DJI telemetry)
``decision``    one decision per clip from its frames' decisions
``loader``      a clip as work items of the ordered pipeline (its frames, then the clip's row)

Torch-free, like the rest of ``lit_edge.device``.
"""

from __future__ import annotations

from lit_edge.device.video.clips import CLIP_SUFFIXES, ClipError, ClipInfo, is_clip, open_capture, probe
from lit_edge.device.video.sampler import ClipSampler, SampleConfig, SampledFrame, Target, plan, remaining

__all__ = [
    "CLIP_SUFFIXES",
    "ClipError",
    "ClipInfo",
    "ClipSampler",
    "SampleConfig",
    "SampledFrame",
    "Target",
    "is_clip",
    "open_capture",
    "plan",
    "probe",
    "remaining",
]
