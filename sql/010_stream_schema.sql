-- The MSK cluster as an external schema: each Kafka topic appears as a relation of this schema.
-- Redshift connects to the brokers named by URI (the stack's IAM bootstrap servers, port 9098)
-- and authenticates with the IAM role (kafka-cluster:Connect, DescribeTopic, ReadData, groups).
-- URI rather than CLUSTER_ARN: CLUSTER_ARN makes Redshift call kafka:GetBootstrapBrokers itself
-- and is kept for backward compatibility (docs/warehouse.md). Locally this statement becomes a
-- plain schema that holds the stand-in topic table filled by the ingester.
CREATE EXTERNAL SCHEMA IF NOT EXISTS {{stream_schema}}
FROM KAFKA
IAM_ROLE '{{iam_role_arn}}'
AUTHENTICATION iam
URI '{{bootstrap_servers}}';
