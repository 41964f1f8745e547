"""What every step shares: params.yaml validated against its schema, the error a step reports,
atomic writes, the steps' command line, the framework-free LeNet-5 spec, the frameworks'
names, and the article's published facts. Imports nothing else from the package."""
