"""vqspeech: discrete speech units from a VQ-VAE, and honest measures of how well they line up
with phonemes. The library behind the DVC stages in `stages/`."""
