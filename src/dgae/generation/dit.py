"""A class-conditional DiT over normalised latents (Peebles & Xie 2023, adaLN-zero), with the
LightningDiT refinements as switches: RMSNorm, SwiGLU, QK-norm and 2-D rotary position embedding.

Shapes: latents (B, c, h, w); tokens (B, T, D) with T = (h/p)(w/p); t (B,) in [0, 1]; y (B,)
class indices, where ``num_classes`` is the null (unconditional) label used for guidance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dgae.config import DiTConfig
from dgae.nn import timestep_embedding


class RMSNorm(nn.Module):
    def __init__(self, dim: int, affine: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * self.weight if self.weight is not None else x


def _norm(dim: int, rms: bool) -> nn.Module:
    return (
        RMSNorm(dim, affine=False) if rms else nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
    )


def rope_2d(grid_h: int, grid_w: int, head_dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos/sin tables (T, head_dim/2) for axial 2-D RoPE: half the pairs rotate with the row,
    half with the column."""
    quarter = head_dim // 4
    freqs = 1.0 / (10000 ** (torch.arange(quarter, device=device) / quarter))
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, device=device).repeat(grid_h)
    angles = torch.cat([rows[:, None] * freqs, cols[:, None] * freqs], dim=1)  # (T, head_dim/2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive pairs of x (B, heads, T, head_dim) by the tabled angles."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # each (B, heads, T, head_dim/2)
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b t (n h d) -> n b h t d", n=3, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, T, head_dim)
        return self.proj(rearrange(out, "b h t d -> b t (h d)"))


class MLP(nn.Module):
    """SwiGLU (hidden 2/3 of the GELU width, so the parameter count matches) or GELU MLP."""

    def __init__(self, dim: int, ratio: float, swiglu: bool) -> None:
        super().__init__()
        self.swiglu = swiglu
        hidden = int(2 * ratio * dim / 3) if swiglu else int(ratio * dim)
        self.fc1 = nn.Linear(dim, 2 * hidden if swiglu else hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        if self.swiglu:
            a, b = h.chunk(2, dim=-1)
            return self.fc2(F.silu(a) * b)
        return self.fc2(F.gelu(h, approximate="tanh"))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """adaLN-zero block: the modulation is zero at init, so the block starts as the identity."""

    fsdp_unit = True  # a separate FSDP2 shard unit (training/fsdp.py)

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.norm1, self.norm2 = _norm(d, cfg.rmsnorm), _norm(d, cfg.rmsnorm)
        self.attn = Attention(d, cfg.heads, cfg.qk_norm)
        self.mlp = MLP(d, cfg.mlp_ratio, cfg.swiglu)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)  # each (B, D)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), s1, sc1), rope)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), s2, sc2))


def sincos_2d(grid_h: int, grid_w: int, dim: int) -> Tensor:
    """Fixed 2-D sine-cosine position embedding (T, dim) (used when RoPE is off)."""
    rows = timestep_embedding(torch.arange(grid_h).repeat_interleave(grid_w) / 1000.0, dim // 2)
    cols = timestep_embedding(torch.arange(grid_w).repeat(grid_h) / 1000.0, dim // 2)
    return torch.cat([rows, cols], dim=1)


class DiT(nn.Module):
    """(x (B, c, h, w), t (B,), y (B,)) -> velocity (B, c, h, w)."""

    def __init__(
        self, cfg: DiTConfig, latent_channels: int, latent_size: int, num_classes: int
    ) -> None:
        super().__init__()
        cfg.validate()
        if latent_size % cfg.patch_size:
            raise ValueError(
                f"latent size {latent_size} is not divisible by patch size {cfg.patch_size}"
            )
        self.cfg, self.channels, self.num_classes = cfg, latent_channels, num_classes
        self.grid = latent_size // cfg.patch_size
        d, p = cfg.hidden, cfg.patch_size
        self.patch = nn.Conv2d(latent_channels, d, p, stride=p)
        self.t_embed = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.y_embed = nn.Embedding(num_classes + 1, d)  # last row: the null label
        nn.init.normal_(self.y_embed.weight, std=0.02)
        # fixed position tables, built once (non-persistent: derived from the config)
        if cfg.rope:
            cos, sin = rope_2d(self.grid, self.grid, d // cfg.heads, torch.device("cpu"))
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.register_buffer("pos", sincos_2d(self.grid, self.grid, d), persistent=False)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final_norm = _norm(d, cfg.rmsnorm)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.final = nn.Linear(d, p * p * latent_channels)
        for layer in (self.final_ada[1], self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        p, g = self.cfg.patch_size, self.grid
        h = rearrange(self.patch(x), "b d gh gw -> b (gh gw) d")  # (B, T, D)
        rope = (self.rope_cos, self.rope_sin) if self.cfg.rope else None
        if rope is None:
            h = h + self.pos.to(h.dtype)
        c = self.t_embed(timestep_embedding(t, 256)) + self.y_embed(y)  # (B, D)
        for block in self.blocks:
            h = block(h, c, rope)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        h = self.final(modulate(self.final_norm(h), shift, scale))  # (B, T, p*p*c)
        return rearrange(h, "b (gh gw) (p q c) -> b c (gh p) (gw q)", gh=g, gw=g, p=p, q=p)

    def forward_with_guidance(
        self,
        x: Tensor,
        t: Tensor,
        y: Tensor,
        scale: float,
        interval: tuple[float, float] = (0.0, 1.0),
    ) -> Tensor:
        """Classifier-free guidance v_u + s (v_c - v_u), applied only where t lies in
        ``interval`` (guidance interval, Kynkäänniemi et al. 2024); elsewhere the conditional v."""
        null = torch.full_like(y, self.num_classes)
        v_c, v_u = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
        inside = ((t >= interval[0]) & (t <= interval[1])).to(x.dtype)[:, None, None, None]
        return v_c + inside * (scale - 1.0) * (v_c - v_u)
