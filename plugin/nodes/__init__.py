"""Other DICOM nodes: the list (kept by Orthanc), C-ECHO, query and retrieve,
sending a study, and the jobs that do it (service.py); their JSON API
(routes.py) and their page (pages.py), each a list of declared routes."""
