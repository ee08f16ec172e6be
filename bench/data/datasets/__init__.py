"""Built-in datasets: every module here registers one or more with ``@register_dataset``."""
