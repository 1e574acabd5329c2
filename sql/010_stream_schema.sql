-- The MSK cluster as an external schema: each Kafka topic appears as a relation of this schema.
-- Redshift authenticates to MSK with the IAM role (kafka-cluster:Connect, DescribeTopic, ReadData
-- and kafka:GetBootstrapBrokers). Locally this statement becomes a plain schema that holds the
-- stand-in topic table filled by the ingester (see docs/warehouse.md).
CREATE EXTERNAL SCHEMA IF NOT EXISTS {{stream_schema}}
FROM MSK
IAM_ROLE '{{iam_role_arn}}'
AUTHENTICATION iam
CLUSTER_ARN '{{msk_cluster_arn}}';
