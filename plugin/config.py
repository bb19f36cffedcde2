"""The plugin's settings: the `Pacs` section of Orthanc's configuration,
overridden by the PACS_* environment variables of SPEC.md."""

import os
from dataclasses import dataclass
from pathlib import Path

from plugin.clock import zone_name


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    storage_dir: Path
    database_url: str
    reconcile_interval: float
    stable_age: float
    min_free_disk_mb: int
    log_level: str
    admin_password: str
    bcrypt_cost: int = 12
    jwt_secret: str = ""
    access_token_minutes: float = 15.0
    session_hours: float = 12.0
    idle_hours: float = 2.0
    trusted_proxies: tuple = ()
    secure_cookies: bool = False
    image_audit_window: int = 300
    claim_minutes: float = 30.0
    institution_name: str = ""
    logo_path: str = ""
    remote_timeout: int = 10
    max_upload_mb: int = 512  # the largest request body: a DICOM file or ZIP uploaded, a STOW
    viewer_conversion: bool = True  # lossless changes at ingest so OHIF shows every image
    # Modality worklist and MPPS (plugin/mwl, plugin/mpps); MppsPort 0: no MPPS listener.
    mpps_port: int = 4243
    mpps_aet: str = "PACS_MPPS"
    mpps_bind: str = "0.0.0.0"
    mwl_max_answers: int = 1000
    case_sensitive_pn: bool = False
    # Orthanc's DICOM server settings, which the MPPS listener follows too.
    dicom_threads: int = 4  # DicomThreadsCount: associations served at once
    dicom_scp_timeout: float = 30  # DicomScpTimeout: seconds an idle association lives
    strict_aet: bool = False  # StrictAetComparison: AE titles compared case-sensitively
    time_zone: str = ""  # TimeZone, else TZ: the clinic's IANA zone ("": the machine's), see plugin/clock

    @classmethod
    def from_configuration(cls, configuration, environ=None):
        environ = os.environ if environ is None else environ
        pacs = configuration.get("Pacs", {})
        data_dir = Path(pacs.get("DataDir") or environ.get("PACS_DATA_DIR") or "data").resolve()
        storage = Path(configuration.get("StorageDirectory") or data_dir / "orthanc")
        database_url = (
            environ.get("PACS_DATABASE_URL") or pacs.get("DatabaseUrl") or f"sqlite:///{data_dir / 'pacs.sqlite'}"
        )
        return cls(
            data_dir=data_dir,
            storage_dir=storage,
            database_url=database_url,
            reconcile_interval=float(pacs.get("ReconcileIntervalSeconds", 900)),
            stable_age=float(configuration.get("StableAge", 60)),
            min_free_disk_mb=int(pacs.get("MinFreeDiskMB", 500)),
            log_level=str(pacs.get("LogLevel", "INFO")),
            admin_password=admin_password(environ),
            bcrypt_cost=int(pacs.get("BcryptCost", 12)),
            jwt_secret=environ.get("PACS_JWT_SECRET") or pacs.get("JwtSecret", ""),
            access_token_minutes=float(pacs.get("AccessTokenMinutes", 15)),
            session_hours=float(pacs.get("SessionHours", 12)),
            idle_hours=float(pacs.get("IdleHours", 2)),
            trusted_proxies=tuple(pacs.get("TrustedProxies", ())),
            secure_cookies=bool(pacs.get("SecureCookies", False)),
            image_audit_window=int(pacs.get("ImageAuditWindowSeconds", 300)),
            claim_minutes=float(pacs.get("ClaimMinutes", 30)),
            institution_name=str(pacs.get("InstitutionName", "")),
            logo_path=str(pacs.get("LogoPath", "")),
            remote_timeout=int(pacs.get("RemoteTimeoutSeconds", 10)),
            max_upload_mb=int(pacs.get("MaxUploadMB", 512)),
            viewer_conversion=bool(pacs.get("ViewerConversion", True)),
            mpps_port=int(pacs.get("MppsPort", 4243)),
            mpps_aet=str(pacs.get("MppsAet", "PACS_MPPS")),
            mpps_bind=str(pacs.get("MppsBind", "0.0.0.0")),
            mwl_max_answers=int(pacs.get("MwlMaxAnswers", 1000)),
            case_sensitive_pn=bool(configuration.get("CaseSensitivePN", False)),
            dicom_threads=int(configuration.get("DicomThreadsCount", 4)),
            dicom_scp_timeout=float(configuration.get("DicomScpTimeout", 30)),
            strict_aet=bool(configuration.get("StrictAetComparison", False)),
            time_zone=zone_name(str(pacs.get("TimeZone", "")), environ),
        )


def admin_password(environ):
    """The first admin's password: PACS_ADMIN_PASSWORD, or what the file named by
    PACS_ADMIN_PASSWORD_FILE holds (a Docker secret: unlike an environment variable,
    `docker inspect` does not show it), its final line break dropped. ValueError for
    both at once or a file that cannot be read."""
    value, path = environ.get("PACS_ADMIN_PASSWORD", ""), environ.get("PACS_ADMIN_PASSWORD_FILE", "")
    if not path:
        return value
    if value:
        raise ValueError("set PACS_ADMIN_PASSWORD or PACS_ADMIN_PASSWORD_FILE, not both")
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"PACS_ADMIN_PASSWORD_FILE: cannot read {path}: {getattr(error, 'strerror', None) or error}"
        ) from None
