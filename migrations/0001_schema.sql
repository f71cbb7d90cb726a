-- The deployment schema of the seed (tables, enums, the four named indexes), plus the two tables
-- it references but does not define: users and nodes.
-- Timestamps are timestamptz rather than the seed's TIMESTAMP: every value the API returns is UTC
-- ISO-8601 with `Z`, and no session time zone can shift a stored instant.
-- Primary keys default to gen_random_uuid() (built in since PostgreSQL 13) so inserts need not
-- supply them; the seed's columns are otherwise unchanged.

-- migrate:up
CREATE TYPE deploymentstatus AS ENUM ('pending', 'scheduled', 'running', 'stopped', 'failed', 'deleted');
CREATE TYPE replicastatus AS ENUM ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed');
CREATE TYPE nodestatus AS ENUM ('ready', 'not_ready', 'cordoned', 'draining');

CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    subject TEXT NOT NULL UNIQUE,
    username TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(100) NOT NULL UNIQUE,
    status nodestatus NOT NULL DEFAULT 'ready',
    cpu_cores FLOAT NOT NULL CHECK (cpu_cores >= 0),
    memory_mb INTEGER NOT NULL CHECK (memory_mb >= 0),
    gpu_units INTEGER NOT NULL DEFAULT 0 CHECK (gpu_units >= 0),
    storage_gb INTEGER NOT NULL CHECK (storage_gb >= 0),
    labels JSONB NOT NULL DEFAULT '{}',
    last_heartbeat_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE deployments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(100) NOT NULL,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    container_image VARCHAR(500) NOT NULL,
    status deploymentstatus NOT NULL DEFAULT 'pending',
    target_replicas INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ NULL
);

CREATE TABLE deployment_replicas (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    deployment_id UUID NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    node_id UUID NULL REFERENCES nodes(id) ON DELETE SET NULL,
    status replicastatus NOT NULL DEFAULT 'pending',
    container_id VARCHAR(255) NULL,
    started_at TIMESTAMPTZ NULL,
    stopped_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE deployment_resources (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    deployment_id UUID NOT NULL UNIQUE REFERENCES deployments(id) ON DELETE CASCADE,
    cpu_cores FLOAT NOT NULL,
    memory_mb INTEGER NOT NULL,
    gpu_units INTEGER NOT NULL DEFAULT 0,
    storage_gb INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE deployment_status_history (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    deployment_id UUID NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    old_status VARCHAR(50) NOT NULL,
    new_status VARCHAR(50) NOT NULL,
    changed_by UUID NULL REFERENCES users(id) ON DELETE SET NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason VARCHAR(500) NULL
);

CREATE INDEX idx_deployments_user_active ON deployments (user_id, deleted_at);
CREATE UNIQUE INDEX idx_deployments_user_name_unique ON deployments (user_id, name) WHERE deleted_at IS NULL;
CREATE INDEX idx_replicas_deployment_status ON deployment_replicas (deployment_id, status);
CREATE INDEX idx_status_history_deployment_time ON deployment_status_history (deployment_id, changed_at);

-- migrate:down
DROP TABLE deployment_status_history;
DROP TABLE deployment_resources;
DROP TABLE deployment_replicas;
DROP TABLE deployments;
DROP TABLE nodes;
DROP TABLE users;
DROP TYPE nodestatus;
DROP TYPE replicastatus;
DROP TYPE deploymentstatus;
