"""Method configs (pydantic only), registered under the method's name for fast validation."""
