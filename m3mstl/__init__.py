"""m3mstl: runnable companion to "Multi-Modal Multi-Stage Multi-Task Learning for
Occlusion-Aware Facial Landmark Localisation" (Ng et al., AI 2026)."""

__version__ = "0.1.0"
