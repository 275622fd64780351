"""Where models come from: loading into a TransformerBridge, device maps, the embedded demo model, what can be loaded here."""
