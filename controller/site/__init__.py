"""The site configuration: typed models, the strict YAML loader, cross-section checks, roles and
the driver connection schemas. Imports nothing else of heatctl."""
