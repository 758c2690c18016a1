"""`provision data`: release, check out, list and prefetch versions, find duplicate files."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from provision.cli.common import inventory_option
from provision.data.checkout import checkout_version
from provision.data.duplicates import compare_versions, find_duplicates
from provision.data.fetch import fetch as fetch_version
from provision.data.release import release as release_version
from provision.data.runner import Checkout, LocalRunner, Runner, local_checkout
from provision.data.versions import versions as list_versions
from provision.errors import InputError
from provision.inventory import load_inventory
from provision.plays.bootstrap import check_data_path, check_tag
from provision.plays.data import remote_checkout
from provision.report import print_json


@dataclass(frozen=True)
class Where:
    """Where a data command works: a local checkout, or `--on HOST` of an inventory."""

    inventory: str | None
    on: str | None
    repo: str
    json: bool
    timeout: float

    @contextmanager
    def open(self) -> Iterator[tuple[Runner, Checkout]]:
        if self.on is None:
            yield LocalRunner(), local_checkout(self.repo)
            return
        if self.inventory is None:
            raise InputError("--on HOST needs an inventory (-i FILE or $PROVISION_INVENTORY)", key="--on")
        with remote_checkout(load_inventory(self.inventory), self.on, timeout=self.timeout) as opened:
            yield opened

    def show(self, report: Any) -> None:
        """A report as lines, or as one JSON document with --json."""
        if self.json:
            print_json(report.to_json())
        else:
            for line in report.lines():
                click.echo(line)


def where_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """-i, --on, --repo, --json, --timeout (host keys must be pinned: `provision hostkeys scan`)."""
    options = [
        inventory_option,
        click.option("--on", "on", metavar="HOST", help="Run on this inventory host over SSH: on storage in "
                     "server_repo as git_user, on a client in workdir."),
        click.option("--repo", default=".", show_default=True, metavar="DIR",
                     help="The local checkout (without --on)."),
        click.option("--json", "json_output", is_flag=True, help="Print one JSON document."),
        click.option("--timeout", type=click.FloatRange(1, 86400), default=30.0, show_default=True,
                     help="Seconds allowed to connect (with --on)."),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, inventory: str | None, on: str | None, repo: str, json_output: bool, timeout: float,
                **kwargs: Any) -> Any:
        return func(*args, where=Where(inventory, on, repo, json_output, timeout), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


check_option = click.option("-C", "--check", is_flag=True, help="Change nothing; say what would be done.")


@click.group()
def data() -> None:
    """Daily work with versioned data and models: release, checkout, versions, fetch, duplicates.

    \b
    Example:
      provision data versions
      provision data release v1.1 --path data -m "more images" -i site.yml --on ws1
    """


@data.command()
@where_options
@check_option
@click.argument("version")
@click.option("--path", "paths", multiple=True, required=True, metavar="PATH",
              help="File or directory (relative to the checkout's top) to dvc add; repeatable.")
@click.option("-m", "--message", required=True, help="Commit and tag message.")
def release(where: Where, check: bool, version: str, paths: tuple[str, ...], message: str) -> None:
    """Publish PATHs as VERSION: dvc add, dvc push, commit, annotated tag, git push with the tag.

    Refused, changing nothing, when the tag exists here or in origin, when other files have
    uncommitted changes, or when the data push fails: no tag ever names data missing from the remote.

    \b
    Example:
      provision data release v1.1 --path data -m "v1.1: 200 more images"
      provision data release model-2024-06 --path model_output -m "model" -i site.yml --on gpu1
    """
    tag = check_tag(version)
    checked = list(dict.fromkeys(check_data_path(path, key="--path") for path in paths))
    with where.open() as (runner, checkout):
        where.show(release_version(runner, checkout, tag, checked, message, check=check))


@data.command()
@where_options
@check_option
@click.argument("version")
@click.option("--force", is_flag=True, help="Overwrite locally modified tracked data.")
def checkout(where: Where, check: bool, version: str, force: bool) -> None:
    """Switch the work tree's data to VERSION (fetching what is missing); report what changed.

    \b
    Example:
      provision data checkout v1.0
      provision data checkout v1.1 -i site.yml --on ws2
    """
    tag = check_tag(version)
    with where.open() as (runner, repo):
        where.show(checkout_version(runner, repo, tag, force=force, check=check))


@data.command()
@where_options
def versions(where: Where) -> None:
    """List the versions (tags): date, message, datasets with file counts and sizes (no data read).

    \b
    Example:
      provision data versions --json
    """
    with where.open() as (runner, checkout):
        found = list_versions(runner, checkout)
    if where.json:
        print_json([version.to_json() for version in found])
        return
    for version in found:
        for line in version.lines():
            click.echo(line)


@data.command()
@where_options
@check_option
@click.argument("version")
@click.option("-j", "--jobs", type=click.IntRange(1, 128), default=4, show_default=True,
              help="Parallel transfers.")
def fetch(where: Where, check: bool, version: str, jobs: int) -> None:
    """Put VERSION's objects into the cache only (work tree untouched), so `checkout` is instant.

    \b
    Example:
      provision data fetch v1.1 --jobs 8 -i site.yml --on gpu1
    """
    tag = check_tag(version)
    with where.open() as (runner, checkout):
        where.show(fetch_version(runner, checkout, tag, jobs=jobs, check=check))


@data.command()
@click.argument("path", default=".")
@click.option("--versions", "tags", metavar="V1,V2,...",
              help="Also compare these versions: objects each one adds and reuses (from .dir listings).")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document.")
def duplicates(path: str, tags: str | None, json_output: bool) -> None:
    """Groups of identical files under PATH (local) and the bytes they waste.

    Hashes DVC already knows (its hash cache) are reused; other files are read only when another file
    has the same size.

    \b
    Example:
      provision data duplicates data --json
      provision data duplicates --versions v1.0,v1.1
    """
    report = find_duplicates(path)
    if tags:
        wanted = [check_tag(tag.strip()) for tag in tags.split(",") if tag.strip()]
        known = {version.tag: version for version in list_versions(LocalRunner(), local_checkout(path))}
        unknown = [tag for tag in wanted if tag not in known]
        if unknown:
            raise InputError(f"no such version: {', '.join(unknown)}", key="--versions")
        report.versions = compare_versions(path, [known[tag] for tag in wanted])
    if json_output:
        print_json(report.to_json())
        return
    for line in report.lines():
        click.echo(line)
