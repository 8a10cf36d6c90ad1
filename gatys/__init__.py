"""gatys: neural style transfer by per-image optimisation (Gatys et al.), on fastst's shared loss network."""
