"""The study: grid expansion, runtime plan, runs per GPU, status, matched-width cache."""
