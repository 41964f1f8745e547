"""The benchmark: training variants side by side (training), the engines' overhead and scaling
with seeds in copies of the repository (pipeline), and the benchmark page (report)."""
