"""The stages of the chain, one module each."""
