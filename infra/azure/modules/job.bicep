// One Container Apps job running the prefpipe image. main.bicep declares the five jobs with it; they differ in trigger,
// workload profile, parallelism and the prefpipe arguments.

@description('Job name (Container Apps: 2-32 lowercase letters, digits and hyphens).')
@minLength(2)
@maxLength(32)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the job.')
param tags object = {}

@description('Resource id of the Container Apps managed environment.')
param environmentId string

@description('Workload profile the replicas run on: "Consumption" (CPU) or the GPU profile name.')
param workloadProfileName string

@description('Resource id of the user-assigned managed identity the job runs as (storage, queue, registry, Key Vault).')
param identityId string

@description('Client id of that identity, handed to DefaultAzureCredential as AZURE_CLIENT_ID.')
param identityClientId string

@description('Registry login server the image is pulled from with the managed identity (AcrPull).')
param registryServer string

@description('Full image reference, e.g. myacr.azurecr.io/prefpipe:1.0.')
param image string

@description('Arguments after the prefpipe executable, e.g. ["run", "/config/pipeline.yaml"].')
param args array

@description('How the job starts: Schedule (cron), Event (KEDA scale rule) or Manual (az containerapp job start).')
@allowed([
  'Schedule'
  'Event'
  'Manual'
])
param triggerType string

@description('Cron expression in UTC (triggerType Schedule only).')
param cronExpression string = ''

@description('KEDA scale rules (triggerType Event only).')
param scaleRules array = []

@description('Most executions started per polling interval (triggerType Event only).')
@minValue(1)
param maxExecutions int = 10

@description('Seconds between KEDA polls of the event source (triggerType Event only).')
@minValue(10)
param pollingInterval int = 30

@description('Replicas started per execution (shard workers: N).')
@minValue(1)
param parallelism int = 1

@description('Replicas that must succeed for the execution to succeed (shard workers: N).')
@minValue(1)
param replicaCompletionCount int = 1

@description('Seconds a replica may run before it is stopped.')
@minValue(60)
param replicaTimeout int

@description('Retries of a failed replica before the execution fails.')
@minValue(0)
param replicaRetryLimit int = 1

@description('vCPUs per replica, as a string (Consumption: "0.25" to "4"; GPU profiles: up to the profile size).')
param cpu string

@description('Memory per replica, e.g. "8Gi" (Consumption: 2 GiB per vCPU).')
param memory string

@description('Environment variables: [{ name, value }] or [{ name, secretRef }].')
param env array

@description('Job secrets: Key Vault references [{ name, keyVaultUrl, identity }] and the pipeline file.')
@secure()
param secrets object

@description('Volumes: the pipeline file mounted from a secret volume.')
param volumes array

@description('Volume mounts of the prefpipe container.')
param volumeMounts array

@description('Health probes of the prefpipe container ([{ type: Liveness|Readiness|Startup, httpGet: { path, port }, ... }]); `prefpipe serve --health-port PORT` answers /healthz/live and /healthz/ready. Default: none.')
param probes array = []

var scheduleConfig = triggerType == 'Schedule'
  ? {
      cronExpression: cronExpression
      parallelism: parallelism
      replicaCompletionCount: replicaCompletionCount
    }
  : null

var eventConfig = triggerType == 'Event'
  ? {
      parallelism: parallelism
      replicaCompletionCount: replicaCompletionCount
      scale: {
        minExecutions: 0
        maxExecutions: maxExecutions
        pollingInterval: pollingInterval
        rules: scaleRules
      }
    }
  : null

var manualConfig = triggerType == 'Manual'
  ? {
      parallelism: parallelism
      replicaCompletionCount: replicaCompletionCount
    }
  : null

resource job 'Microsoft.App/jobs@2025-01-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: workloadProfileName
    configuration: {
      triggerType: triggerType
      replicaTimeout: replicaTimeout
      replicaRetryLimit: replicaRetryLimit
      scheduleTriggerConfig: scheduleConfig
      eventTriggerConfig: eventConfig
      manualTriggerConfig: manualConfig
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: secrets.items
    }
    template: {
      containers: [
        {
          name: 'prefpipe'
          image: image
          command: [
            'prefpipe'
          ]
          args: args
          env: concat(
            [
              {
                name: 'AZURE_CLIENT_ID'
                value: identityClientId
              }
            ],
            env
          )
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          volumeMounts: volumeMounts
          probes: probes
        }
      ]
      volumes: volumes
    }
  }
}

@description('Resource id of the job.')
output id string = job.id

@description('Name of the job (az containerapp job start --name).')
output name string = job.name
