"""The U-Net's number format: ``auto`` picks the fastest one the machine runs natively.

Only the network runs in it; the STFTs, the masks' arithmetic and the Wiener filter stay float32.
"""
import torch

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def native_bfloat16_cpu() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AMX-BF16 or AVX512-BF16), as PyTorch detects it."""
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def machine_precision(device: torch.device) -> str:
    """The precision ``auto`` means on ``device``: bfloat16 on a CPU with bfloat16 arithmetic, else
    float32; on a GPU bfloat16 where it has it natively, else float16."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported(including_emulation=False) else "float16"
    return "bfloat16" if device.type == "cpu" and native_bfloat16_cpu() else "float32"


def resolve_precision(precision: str, device: torch.device, model_precision: str = "auto") -> str:
    """``precision`` made concrete: ``"auto"`` becomes the model's own (``model_precision``, a
    model's ``separation`` setting) where it pins one, else :func:`machine_precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        precision = model_precision
    return machine_precision(device) if precision == "auto" else precision
