"""Reports: templates (four shipped), the report of a study with a version
counter, its history, addenda, and the DICOM copies to store into Orthanc."""

import datetime
import json

from peewee import BooleanField, CharField, DateTimeField, IntegerField, Model, TextField


class ReportTemplate(Model):
    name = TextField(unique=True)
    modality = CharField(max_length=16, default="")
    body_part = TextField(default="")
    sections = TextField()  # JSON: {section: default text}
    disabled = BooleanField(default=False)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "report_template"


class Report(Model):
    study_instance_uid = TextField(unique=True)
    status = CharField(max_length=16, index=True)
    template_id = IntegerField(null=True)
    clinical_information = TextField(default="")
    technique = TextField(default="")
    comparison = TextField(default="")
    findings = TextField(default="")
    impression = TextField(default="")
    version = IntegerField(default=0)
    author_id = IntegerField(null=True)
    author_name = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()
    signed_by_id = IntegerField(null=True)
    signer_name = TextField(default="")
    signed_at = DateTimeField(null=True)
    study_deleted_at = DateTimeField(null=True)
    study_snapshot = TextField(default="{}")  # demographics, kept should the study be deleted

    class Meta:
        table_name = "report"


class ReportEvent(Model):
    report_id = IntegerField(index=True)
    version = IntegerField()
    kind = CharField(max_length=16)
    user_id = IntegerField(null=True)
    username = TextField()
    at = DateTimeField()
    data = TextField()

    class Meta:
        table_name = "report_event"


class ReportAddendum(Model):
    report_id = IntegerField(index=True)
    text = TextField()
    author_id = IntegerField(null=True)
    author_name = TextField()
    signed_at = DateTimeField()

    class Meta:
        table_name = "report_addendum"


class ReportDicom(Model):
    report_id = IntegerField(index=True)
    addendum_id = IntegerField(null=True)
    sop_instance_uid = TextField()
    series_instance_uid = TextField()
    status = CharField(max_length=16, index=True)  # pending, stored, failed
    attempts = IntegerField(default=0)
    last_error = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "report_dicom"


TEMPLATES = [
    (
        "CT head",
        "CT",
        "HEAD",
        {
            "technique": "Axial CT images of the head were obtained without intravenous contrast. "
            "Multiplanar reformats were reviewed.",
            "findings": "Brain parenchyma: No acute intracranial haemorrhage, mass effect or midline shift. "
            "Grey-white matter differentiation is preserved.\n"
            "Ventricles and extra-axial spaces: Normal in size and configuration.\n"
            "Posterior fossa: Unremarkable.\n"
            "Calvarium and skull base: No fracture.\n"
            "Paranasal sinuses and mastoids: Clear.",
            "impression": "No acute intracranial abnormality.",
        },
    ),
    (
        "Chest X-ray",
        "CR",
        "CHEST",
        {
            "technique": "PA and lateral views of the chest.",
            "findings": "Lines and tubes: None.\n"
            "Lungs: Clear. No consolidation, pleural effusion or pneumothorax.\n"
            "Heart and mediastinum: Cardiomediastinal silhouette within normal limits.\n"
            "Bones and soft tissues: No acute osseous abnormality.",
            "impression": "No acute cardiopulmonary abnormality.",
        },
    ),
    (
        "MR knee",
        "MR",
        "KNEE",
        {
            "technique": "Multiplanar, multisequence MR imaging of the knee without contrast.",
            "findings": "Menisci: Medial and lateral menisci intact.\n"
            "Ligaments: ACL, PCL, MCL and lateral collateral complex intact.\n"
            "Extensor mechanism: Quadriceps and patellar tendons intact.\n"
            "Cartilage: No full-thickness chondral defect.\n"
            "Bone marrow: No fracture or marrow oedema.\n"
            "Joint: No significant effusion. No Baker cyst.",
            "impression": "No internal derangement of the knee.",
        },
    ),
    (
        "Abdominal ultrasound",
        "US",
        "ABDOMEN",
        {
            "technique": "Real-time grey-scale and colour Doppler ultrasound of the abdomen.",
            "findings": "Liver: Normal size and echotexture. No focal lesion.\n"
            "Gallbladder and bile ducts: No stones. Common bile duct not dilated.\n"
            "Pancreas: Visualised portions unremarkable.\n"
            "Spleen: Normal size.\n"
            "Kidneys: Normal size and corticomedullary differentiation. No hydronephrosis.\n"
            "Aorta: Normal calibre.\n"
            "Free fluid: None.",
            "impression": "Normal abdominal ultrasound.",
        },
    ),
]


def up(db):
    models = [ReportTemplate, Report, ReportEvent, ReportAddendum, ReportDicom]
    with db.bind_ctx(models):
        db.create_tables(models)
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        for name, modality, body_part, sections in TEMPLATES:
            ReportTemplate.create(
                name=name,
                modality=modality,
                body_part=body_part,
                sections=json.dumps(sections),
                created_at=now,
                updated_at=now,
            )
