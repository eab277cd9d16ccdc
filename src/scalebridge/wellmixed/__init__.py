"""Methods for well-mixed reaction networks."""
