"""The method plugins shipped with bench; each module registers one method."""
