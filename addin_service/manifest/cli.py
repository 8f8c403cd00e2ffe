"""``addin-service manifest build``: the click group the ``addin-service`` CLI attaches."""

from __future__ import annotations

from pathlib import Path

import click

from addin_service.manifest.builder import SCHEMA_HOW_TO, build_manifests
from addin_service.manifest.errors import ManifestError, ManifestInputError
from addin_service.manifest.inputs import DEFAULT_DISPLAY_NAME, DEFAULT_VERSION


@click.group("manifest")
def manifest_cli() -> None:
    """Build the Outlook add-in manifests an admin deploys."""


@manifest_cli.command("build")
@click.option("--public-url", required=True, envvar="ADDIN_PUBLIC_URL", show_envvar=True,
              help="The https base URL the service is reachable at from Outlook, e.g. https://report.contoso.com.")
@click.option("--client-id", required=True, envvar="ADDIN_CLIENT_ID", show_envvar=True,
              help="The Application (client) ID of the add-in's Entra ID app registration.")
@click.option("-o", "--out", "out_dir", default="./manifest-build", show_default=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Folder to write manifest.xml, manifest.json and unified-app-package.zip to.")
@click.option("--app-id", default=None,
              help="A stable GUID for the add-in. Default: derived from the client id and public URL, "
                   "so rebuilding gives the same id.")
@click.option("--version", "version", default=DEFAULT_VERSION, show_default=True,
              help="The add-in's version; raise it for every change you deploy.")
@click.option("--display-name", default=DEFAULT_DISPLAY_NAME, show_default=True,
              help="The name people see in Outlook (at most 30 characters).")
@click.option("--support-url", default=None,
              help="An https page that tells people where to get help. Default: the public URL.")
@click.option("--node-modules", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A node_modules folder holding @microsoft/app-manifest (default: search from here "
                   "and from the source checkout).")
@click.option("--require-schema", is_flag=True, default=False,
              help="Fail instead of skipping when the JSON schema of the unified manifest is not installed.")
def build_command(public_url: str, client_id: str, out_dir: Path, app_id: str | None, version: str,
                  display_name: str, support_url: str | None, node_modules: Path | None,
                  require_schema: bool) -> None:
    """Check the inputs, build both manifests, validate them, and only then write them."""
    try:
        built = build_manifests(
            public_url, client_id, out_dir,
            app_id=app_id, version=version, display_name=display_name, support_url=support_url,
            node_modules=node_modules, require_schema=require_schema,
        )
    except ManifestInputError as exc:
        raise click.BadParameter(exc.problem, param_hint=f"'{exc.flag}'") from None
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None

    click.echo(f"add-in id      {built.app_id}")
    click.echo(f"version        {built.version} (unified manifest {built.unified_version})")
    click.echo(f"task pane      {built.inputs.taskpane_url}")
    click.echo(f"SSO resource   {built.inputs.api_resource}   (Entra ID: Expose an API, Application ID URI)")
    click.echo(f"NAA redirect   {built.inputs.naa_redirect_uri}   (Entra ID: SPA redirect URI)")
    click.echo(f"wrote          {built.xml_manifest}")
    click.echo(f"wrote          {built.unified_manifest}")
    click.echo(f"wrote          {built.unified_package}")
    if built.schema.validated:
        click.echo("checked        both manifests by their rules")
        click.echo(f"schema         manifest.json is valid against {built.schema.schema}")
    else:
        click.echo("checked        both manifests by their rules")
        click.echo(f"note: JSON schema validation of manifest.json was skipped: {built.schema.skipped}. "
                   f"To enable it, {SCHEMA_HOW_TO}.", err=True)
