"""H.264 bitstream facts the packager needs: parameter sets, the RFC 6381 codec string and
the picture size from the SPS. Pure functions; imports nothing from livecore."""

from __future__ import annotations

from collections.abc import Iterator

NAL_SPS = 7
NAL_PPS = 8


def nal_units(data: bytes) -> Iterator[bytes]:
    """NAL units of an Annex-B buffer, without their start codes."""
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        if j == -1:
            yield data[start:]
            return
        # A 4-byte start code leaves its leading zero at the end of the previous unit.
        yield data[start : j - 1] if data[j - 1] == 0 else data[start:j]
        i = j


def parameter_sets(data: bytes) -> tuple[bytes, bytes] | None:
    """The first SPS and PPS of an access unit, or None when it carries no complete pair."""
    sps = pps = None
    for nal in nal_units(data):
        if not nal:
            continue
        kind = nal[0] & 0x1F
        if kind == NAL_SPS and sps is None:
            sps = nal
        elif kind == NAL_PPS and pps is None:
            pps = nal
    return (sps, pps) if sps is not None and pps is not None else None


def codec_string(sps: bytes) -> str:
    """RFC 6381 `avc1.PPCCLL`: profile_idc, constraint flags and level_idc from the SPS."""
    return "avc1." + sps[1:4].hex()


class _Bits:
    def __init__(self, rbsp: bytes) -> None:
        self._data = rbsp
        self._pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self._data[self._pos >> 3]  # IndexError on a truncated SPS
            value = (value << 1) | ((byte >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("invalid exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def rbsp(nal: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 -> 00 00)."""
    out = bytearray()
    zeros = 0
    for b in nal:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def picture_size(sps: bytes) -> tuple[int, int]:
    """Displayed width and height (after cropping) from an SPS NAL unit (ITU-T H.264 7.3.2.1)."""
    try:
        return _picture_size(_Bits(rbsp(sps[1:])))
    except IndexError:
        raise ValueError("truncated SPS") from None


def _picture_size(r: _Bits) -> tuple[int, int]:
    profile_idc = r.u(8)
    r.u(16)  # constraint flags, level_idc
    r.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc == 3:
            r.u(1)  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.u(1):
                    last = next_ = 8
                    for _ in range(16 if i < 6 else 64):
                        if next_:
                            next_ = (last + r.se() + 256) % 256
                        last = next_ or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.u(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.u(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop_x = 1 if chroma_format_idc in (0, 3) else 2
        crop_y = (2 - frame_mbs_only) * (2 if chroma_format_idc == 1 else 1)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    return width, height
