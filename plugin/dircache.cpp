// The directory cache (being written).
