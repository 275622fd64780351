"""Where prompts come from: generators, file readers, derivations, and tokenisation into the tensors analyses read."""
