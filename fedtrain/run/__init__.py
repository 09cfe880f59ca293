"""Running a federated training job: configuration, the hospital process, the coordinator."""
