"""The synthesize stage's library: what to resynthesize (`excerpts`), WaveNet generation
(`generate`), objective checks of the result (`measures`), and the spectrogram figure (`figure`)."""
