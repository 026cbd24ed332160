"""What the builder's image jobs work with: built once by images.Images and shared with the
jobs it records (requested.RequestedJobs), so the two name their collaborators once."""

from __future__ import annotations

from dataclasses import dataclass

from libs.common.bus.publisher import Publisher
from libs.common.store.cas import ContentStore
from services.builder.jobs import JobTable
from services.builder.layout import Layout
from services.builder.protocols import ImageBucket
from services.builder.runner import JobRunner


@dataclass(frozen=True, slots=True)
class BuilderParts:
    """KV `images`, where events go, the blob store, the data folders, the table of jobs and
    the runner that ends them."""

    bucket: ImageBucket
    publisher: Publisher
    store: ContentStore
    layout: Layout
    jobs: JobTable
    runner: JobRunner

    @classmethod
    def build(
        cls, bucket: ImageBucket, publisher: Publisher, store: ContentStore, layout: Layout
    ) -> BuilderParts:
        jobs = JobTable()
        return cls(
            bucket, publisher, store, layout, jobs, JobRunner(bucket, publisher, layout, jobs)
        )
