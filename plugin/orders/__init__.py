"""Orders: scheduled procedures that modalities find on the worklist (service.py,
its fields: fields.py, its tables: models.py), images reaching an order
(arrivals.py), their JSON API (routes.py) and their pages (pages.py). The DICOM
services that answer from them are plugin/mwl and plugin/mpps."""
