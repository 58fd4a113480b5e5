"""Latent diffusion on autoencoder latents: latent cache, class-conditional DiT, training, sampling."""
