"""The baselines the service is measured against, each doing the least work that the job needs."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import requests
from lxml import etree

from benchmarks._harness import REPORTER, EwsDouble

_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
_T = "http://schemas.microsoft.com/exchange/services/2006/types"

GET_ITEM = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{m}" xmlns:t="{t}">
<s:Header>
<t:RequestServerVersion Version="Exchange2016"/>
<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{user}</t:PrimarySmtpAddress></t:ConnectingSID>
</t:ExchangeImpersonation>
</s:Header>
<s:Body><m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
<t:FieldURI FieldURI="item:MimeContent"/><t:FieldURI FieldURI="item:InternetMessageHeaders"/>
</t:AdditionalProperties></m:ItemShape>
<m:ItemIds><t:ItemId Id="{item}"/></m:ItemIds></m:GetItem></s:Body></s:Envelope>"""


class RawFloor:
    """One POST of the GetItem SOAP with requests (stream=True), lxml iterparse over the response,
    base64-decode of MimeContent, write + fsync: the protocol's floor as issue 7 defines it.

    ``decode`` is the standard library's by default; the service decodes with pybase64, so
    capture_floor also reports the floor with that decoder, to show how much of the margin is it.
    """

    def __init__(self, ews: EwsDouble, decode: Callable[[str], bytes] = base64.b64decode) -> None:
        self._ews = ews
        self._decode = decode
        self._session = requests.Session()
        self._session.auth = (ews.username, ews.password)

    def fetch(self, item_id: str, out: Path, mailbox: str = REPORTER) -> int:
        body = GET_ITEM.format(m=_M, t=_T, user=mailbox, item=item_id).encode()
        with self._session.post(
            self._ews.url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, stream=True, timeout=300
        ) as response:
            response.raise_for_status()
            response.raw.decode_content = True
            size = 0
            for _event, element in etree.iterparse(response.raw, tag=f"{{{_T}}}MimeContent", huge_tree=True):
                data = self._decode(element.text or "")
                with open(out, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                size = len(data)
                element.clear()
        return size


class ExchangelibFloor:
    """exchangelib as shipped, fetching the same item (MimeContent + headers), then write + fsync:
    the baseline issue 3 names."""

    def __init__(self, ews: EwsDouble) -> None:
        from exchangelib import IMPERSONATION, Account, Build, Configuration, Credentials, Version
        from exchangelib.protocol import BaseProtocol

        BaseProtocol.TIMEOUT = 300
        config = Configuration(
            service_endpoint=ews.url,
            credentials=Credentials(ews.username, ews.password),
            auth_type="basic",
            version=Version(build=Build(15, 1), api_version="Exchange2016"),
        )
        self._account = Account(REPORTER, config=config, access_type=IMPERSONATION, autodiscover=False)

    def fetch(self, item_id: str, out: Path) -> int:
        # Account.fetch() would first resolve a folder with GetFolder; GetItem alone is the fetch.
        from exchangelib.fields import FieldPath
        from exchangelib.items import Message
        from exchangelib.properties import ItemId
        from exchangelib.services import GetItem

        fields = [FieldPath(field=Message.get_field_by_fieldname(n)) for n in ("mime_content", "headers")]
        items = list(
            GetItem(account=self._account).call(items=[ItemId(id=item_id)], additional_fields=fields, shape="IdOnly")
        )
        item = items[0]
        if isinstance(item, Exception):
            raise item
        data = item.mime_content
        with open(out, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return len(data)
