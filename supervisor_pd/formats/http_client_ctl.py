"""MindIE-Motor's probe client config `http_client_ctl.json` (http_client_ctl/main.cpp
CheckConfigJsonValid, AssignParams; MINDIE_USE_HTTPS=true|false overrides `tls_enable`)."""

from __future__ import annotations

from pydantic import StrictBool, StrictStr

from supervisor_pd.formats.common import OpenModel


class ClientCert(OpenModel):
    ca_cert: StrictStr
    tls_cert: StrictStr
    tls_key: StrictStr
    tls_passwd: StrictStr
    tls_crl: StrictStr = ""


class LogInfo(OpenModel):
    log_level: StrictStr = "INFO"
    to_file: StrictBool = False


class HttpClientCtlFile(OpenModel):
    tls_enable: StrictBool
    cert: ClientCert
    log_info: LogInfo
