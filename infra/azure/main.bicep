// prefpipe on Azure Container Apps jobs: storage for inputs and artifacts, a queue fed by Event Grid with BlobCreated
// events for new prompt files, one user-assigned managed identity for everything the jobs touch (no account keys in
// the app), and five jobs running the prefpipe image:
//
//   <prefix>-scheduled   Schedule (cron)     prefpipe run /config/pipeline.yaml
//   <prefix>-blob        Event (KEDA queue)  prefpipe serve --config /config/pipeline.yaml --once   (one execution per message)
//   <prefix>-manual      Manual              prefpipe rerun --run ID --stage STAGE | resume --run ID  (args given at start)
//   <prefix>-workers     Manual, N replicas  prefpipe worker --run ID --stage ingest|rank --claim
//   <prefix>-trainer     Manual, GPU profile prefpipe train dpo|ppo ... / rerun of a training stage
//
// Manual jobs default to `prefpipe doctor` (on the trainer: shows whether CUDA is seen); start-job.sh beside this file
// starts an execution with other prefpipe arguments. Deploy: see README.md, "Deploying".

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------------------

@description('Azure region for every resource. Serverless GPU profiles exist in a subset of regions (e.g. westus3, australiaeast, swedencentral).')
param location string = resourceGroup().location

@description('Short lowercase prefix for resource names (3-11 letters or digits).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'prefpipe'

@description('Tags applied to every resource.')
param tags object = {
  app: 'prefpipe'
}

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string = '${namePrefix}${uniqueString(resourceGroup().id)}'

@description('Storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_LRS'

@description('Container where prompt files arrive (the blob trigger watches it).')
param inputsContainerName string = 'inputs'

@description('Blob name prefix inside the inputs container that starts a run, e.g. "incoming/". Empty: the whole container.')
param inputsPrefix string = 'incoming/'

@description('Only blobs whose name ends with this start a run, e.g. ".parquet". Empty: any blob under the prefix.')
param inputsSuffix string = ''

@description('Container holding runs: artifacts (Parquet), manifests, checkpoints and reports.')
param artifactsContainerName string = 'artifacts'

@description('Folder inside the artifacts container where runs go.')
param artifactsPrefix string = 'runs'

@description('Prompts blob (inside the inputs container) that scheduled runs read.')
param scheduledPromptsBlob string = 'prompts/prompts.parquet'

@description('Storage queue that receives Event Grid BlobCreated events for the inputs container/prefix.')
param eventsQueueName string = 'blob-created'

@description('Container registry name (5-50 letters and digits, globally unique). The jobs pull from it with the managed identity.')
@minLength(5)
@maxLength(50)
param registryName string = '${namePrefix}${uniqueString(resourceGroup().id)}'

@description('CPU image repository:tag inside the registry (infra/docker/Dockerfile.cpu).')
param cpuImage string = 'prefpipe:latest'

@description('CUDA image repository:tag inside the registry (infra/docker/Dockerfile.cuda), for the trainer job.')
param gpuImage string = 'prefpipe-cuda:latest'

@description('Create the jobs. Deploy once with false, push the images (az acr build), then deploy again with true.')
param deployJobs bool = true

@description('Serverless GPU workload profile type for the trainer job.')
@allowed([
  'Consumption-GPU-NC24-A100'
  'Consumption-GPU-NC8as-T4'
])
param gpuProfileType string = 'Consumption-GPU-NC24-A100'

@description('vCPUs of a trainer replica (NC24-A100: up to 24; NC8as-T4: up to 8).')
param trainerCpu string = '24'

@description('Memory of a trainer replica (NC24-A100: up to 220Gi; NC8as-T4: up to 56Gi).')
param trainerMemory string = '220Gi'

@description('vCPUs of a CPU replica on the Consumption profile ("0.25" to "4").')
param cpuReplicaCpu string = '4'

@description('Memory of a CPU replica on the Consumption profile (2 GiB per vCPU: "8Gi" for 4 vCPUs).')
param cpuReplicaMemory string = '8Gi'

@description('Cron expression (UTC, 5 fields) of scheduled runs.')
param schedule string = '0 3 * * *'

@description('Shard workers started per execution of the workers job (N in --shard i/N; with --claim any N works).')
@minValue(1)
@maxValue(100)
param shardWorkers int = 4

@description('Most blob-triggered executions KEDA starts per polling interval.')
@minValue(1)
@maxValue(100)
param maxBlobExecutions int = 5

@description('Port on which the blob job\'s `prefpipe serve` answers its liveness (/healthz/live) and readiness (/healthz/ready) probes.')
@minValue(1024)
@maxValue(65535)
param healthPort int = 8080

@description('Seconds a data-stage replica may run (scheduled, blob, manual, workers).')
@minValue(600)
param dataReplicaTimeout int = 21600

@description('Seconds a trainer replica may run.')
@minValue(600)
param trainerReplicaTimeout int = 86400

@description('Folder inside the image where the model folders (policy/, reward/) are found; bake them into a derived image or set the pipeline to blob URIs.')
param modelsPath string = '/models'

@description('Key Vault name (RBAC mode); the managed identity reads its secrets.')
@minLength(3)
@maxLength(24)
param keyVaultName string = '${take(namePrefix, 10)}-${uniqueString(resourceGroup().id)}'

@description('Name of the Key Vault secret holding the LLM judge API key (PREFPIPE_JUDGE_API_KEY). Empty: no judge key. The secret must exist before the jobs deploy.')
param judgeApiKeySecretName string = ''

@description('Name of the Key Vault secret holding the API key of an OpenAI-compatible generation server (PREFPIPE_GENERATOR_API_KEY, for ingest.generator type openai). Empty: no generator key (Azure OpenAI then uses the managed identity). The secret must exist before the jobs deploy.')
param generatorApiKeySecretName string = ''

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---------------------------------------------------------------------------------------------------------------------
// Built-in role definition ids
// ---------------------------------------------------------------------------------------------------------------------

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

// ---------------------------------------------------------------------------------------------------------------------
// Identity, logs, registry, Key Vault
// ---------------------------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Storage: inputs, artifacts, the blob-created queue; shared keys off (Entra ID only)
// ---------------------------------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  sku: {
    name: storageSku
  }
  kind: 'StorageV2'
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource inputsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: inputsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource artifactsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: artifactsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: eventsQueueName
}

// ---------------------------------------------------------------------------------------------------------------------
// Event Grid: BlobCreated under inputs/<prefix> → the queue, delivered with the system topic's own identity
// (shared keys are off, so Event Grid authenticates to the queue with Entra ID).
// ---------------------------------------------------------------------------------------------------------------------

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: '${namePrefix}-storage-events'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource topicSendsToQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, systemTopic.id, roles.storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
  }
}

resource blobCreatedSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'blob-created-to-queue'
  dependsOn: [
    topicSendsToQueue
    inputsContainer
  ]
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${inputsContainerName}/blobs/${inputsPrefix}'
      subjectEndsWith: inputsSuffix
    }
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: storage.id
          queueName: eventsQueueName
          // -1: messages never expire while no job has picked them up.
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// What the jobs' identity may do
// ---------------------------------------------------------------------------------------------------------------------

// Read prompts, write artifacts, take blob leases (shard claims): both containers.
resource blobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// Dequeue and delete event messages (Message Processor) and read the queue's length for the KEDA scaler (queue
// properties, which Message Processor does not grant): Queue Data Contributor, scoped to this one queue.
resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, identity.id, roles.storageQueueDataContributor)
  scope: eventsQueue
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, roles.acrPull)
  scope: registry
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Container Apps environment: Consumption (CPU) + a serverless GPU profile
// ---------------------------------------------------------------------------------------------------------------------

var gpuProfileName = 'gpu'

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: '${namePrefix}-env'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuProfileName
        workloadProfileType: gpuProfileType
      }
    ]
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------------------------------

// The pipeline file (the same one the Kubernetes ConfigMap carries), mounted at /config/pipeline.yaml from a secret
// volume: Container Apps has no config maps. It holds no secret: values come from the environment below.
var pipelineYaml = loadYamlContent('../k8s/configmap.yaml').data['pipeline.yaml']

var blobEndpoint = storage.properties.primaryEndpoints.blob

var commonEnv = concat(
  [
    {
      name: 'PREFPIPE_STORAGE'
      value: '${blobEndpoint}${artifactsContainerName}/${artifactsPrefix}'
    }
    {
      name: 'PREFPIPE_PROMPTS'
      value: '${blobEndpoint}${inputsContainerName}/${scheduledPromptsBlob}'
    }
    {
      name: 'PREFPIPE_INPUTS_CONTAINER'
      value: inputsContainerName
    }
    {
      name: 'PREFPIPE_INPUTS_PREFIX'
      value: inputsPrefix
    }
    {
      name: 'PREFPIPE_EVENTS_QUEUE'
      value: eventsQueueName
    }
    {
      name: 'PREFPIPE_QUEUE_ENDPOINT'
      value: storage.properties.primaryEndpoints.queue
    }
    {
      name: 'PREFPIPE_MODELS'
      value: modelsPath
    }
  ],
  empty(judgeApiKeySecretName)
    ? []
    : [
        {
          name: 'PREFPIPE_JUDGE_API_KEY'
          secretRef: 'judge-api-key'
        }
      ],
  empty(generatorApiKeySecretName)
    ? []
    : [
        {
          name: 'PREFPIPE_GENERATOR_API_KEY'
          secretRef: 'generator-api-key'
        }
      ]
)

var jobSecrets = {
  items: concat(
    [
      {
        name: 'pipeline-yaml'
        value: pipelineYaml
      }
    ],
    empty(judgeApiKeySecretName)
      ? []
      : [
          {
            name: 'judge-api-key'
            keyVaultUrl: '${vault.properties.vaultUri}secrets/${judgeApiKeySecretName}'
            identity: identity.id
          }
        ],
    empty(generatorApiKeySecretName)
      ? []
      : [
          {
            name: 'generator-api-key'
            keyVaultUrl: '${vault.properties.vaultUri}secrets/${generatorApiKeySecretName}'
            identity: identity.id
          }
        ]
  )
}

var configVolumes = [
  {
    name: 'config'
    storageType: 'Secret'
    secrets: [
      {
        secretRef: 'pipeline-yaml'
        path: 'pipeline.yaml'
      }
    ]
  }
]

var configMounts = [
  {
    volumeName: 'config'
    mountPath: '/config'
  }
]

var common = {
  location: location
  tags: tags
  environmentId: environment.id
  identityId: identity.id
  identityClientId: identity.properties.clientId
  registryServer: registry.properties.loginServer
  env: commonEnv
  secrets: jobSecrets
  volumes: configVolumes
  volumeMounts: configMounts
}

module scheduledJob 'modules/job.bicep' = if (deployJobs) {
  name: '${namePrefix}-scheduled'
  dependsOn: [
    acrPull
    blobDataContributor
    vaultSecretsUser
  ]
  params: {
    name: '${namePrefix}-scheduled'
    triggerType: 'Schedule'
    cronExpression: schedule
    workloadProfileName: 'Consumption'
    image: '${registry.properties.loginServer}/${cpuImage}'
    args: [
      'run'
      '/config/pipeline.yaml'
    ]
    cpu: cpuReplicaCpu
    memory: cpuReplicaMemory
    replicaTimeout: dataReplicaTimeout
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    identityClientId: common.identityClientId
    registryServer: common.registryServer
    env: common.env
    secrets: common.secrets
    volumes: common.volumes
    volumeMounts: common.volumeMounts
  }
}

// One execution per queued BlobCreated message (queueLength 1). The execution claims one message, runs the pipeline
// on that blob and deletes the message; the host's blob claim makes a duplicate message start nothing.
module blobJob 'modules/job.bicep' = if (deployJobs) {
  name: '${namePrefix}-blob'
  dependsOn: [
    acrPull
    blobDataContributor
    queueDataContributor
    vaultSecretsUser
  ]
  params: {
    name: '${namePrefix}-blob'
    triggerType: 'Event'
    maxExecutions: maxBlobExecutions
    pollingInterval: 30
    scaleRules: [
      {
        name: 'blob-created'
        type: 'azure-queue'
        metadata: {
          accountName: storage.name
          queueName: eventsQueueName
          queueLength: '1'
        }
        identity: identity.id
      }
    ]
    workloadProfileName: 'Consumption'
    image: '${registry.properties.loginServer}/${cpuImage}'
    args: [
      'serve'
      '--config'
      '/config/pipeline.yaml'
      '--once'
      '--health-port'
      string(healthPort)
    ]
    // Liveness: the process answers and its loops run (a hung replica is restarted); readiness: the run store answers too.
    probes: [
      {
        type: 'Liveness'
        httpGet: {
          path: '/healthz/live'
          port: healthPort
        }
        initialDelaySeconds: 10
        periodSeconds: 30
        timeoutSeconds: 5
        failureThreshold: 3
      }
      {
        type: 'Readiness'
        httpGet: {
          path: '/healthz/ready'
          port: healthPort
        }
        initialDelaySeconds: 5
        periodSeconds: 30
        timeoutSeconds: 10
        failureThreshold: 3
      }
    ]
    cpu: cpuReplicaCpu
    memory: cpuReplicaMemory
    replicaTimeout: dataReplicaTimeout
    replicaRetryLimit: 0
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    identityClientId: common.identityClientId
    registryServer: common.registryServer
    env: common.env
    secrets: common.secrets
    volumes: common.volumes
    volumeMounts: common.volumeMounts
  }
}

// Reruns and resumes: start-job.sh <rg> <prefix>-manual rerun --run ID --stage STAGE (or resume --run ID).
module manualJob 'modules/job.bicep' = if (deployJobs) {
  name: '${namePrefix}-manual'
  dependsOn: [
    acrPull
    blobDataContributor
    vaultSecretsUser
  ]
  params: {
    name: '${namePrefix}-manual'
    triggerType: 'Manual'
    workloadProfileName: 'Consumption'
    image: '${registry.properties.loginServer}/${cpuImage}'
    args: [
      'doctor'
    ]
    cpu: cpuReplicaCpu
    memory: cpuReplicaMemory
    replicaTimeout: dataReplicaTimeout
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    identityClientId: common.identityClientId
    registryServer: common.registryServer
    env: common.env
    secrets: common.secrets
    volumes: common.volumes
    volumeMounts: common.volumeMounts
  }
}

// N replicas that claim shards of one stage: start-job.sh <rg> <prefix>-workers worker --run ID --stage rank --claim.
module workersJob 'modules/job.bicep' = if (deployJobs) {
  name: '${namePrefix}-workers'
  dependsOn: [
    acrPull
    blobDataContributor
    vaultSecretsUser
  ]
  params: {
    name: '${namePrefix}-workers'
    triggerType: 'Manual'
    parallelism: shardWorkers
    replicaCompletionCount: shardWorkers
    workloadProfileName: 'Consumption'
    image: '${registry.properties.loginServer}/${cpuImage}'
    args: [
      'doctor'
    ]
    cpu: cpuReplicaCpu
    memory: cpuReplicaMemory
    replicaTimeout: dataReplicaTimeout
    // A replica that dies loses its lease; its shard goes to another claimant, so a retry only adds a claimant.
    replicaRetryLimit: 2
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    identityClientId: common.identityClientId
    registryServer: common.registryServer
    env: common.env
    secrets: common.secrets
    volumes: common.volumes
    volumeMounts: common.volumeMounts
  }
}

// Training stages on the serverless GPU profile, from the CUDA image.
module trainerJob 'modules/job.bicep' = if (deployJobs) {
  name: '${namePrefix}-trainer'
  dependsOn: [
    acrPull
    blobDataContributor
    vaultSecretsUser
  ]
  params: {
    name: '${namePrefix}-trainer'
    triggerType: 'Manual'
    workloadProfileName: gpuProfileName
    image: '${registry.properties.loginServer}/${gpuImage}'
    args: [
      'doctor'
    ]
    cpu: trainerCpu
    memory: trainerMemory
    replicaTimeout: trainerReplicaTimeout
    replicaRetryLimit: 0
    location: common.location
    tags: common.tags
    environmentId: common.environmentId
    identityId: common.identityId
    identityClientId: common.identityClientId
    registryServer: common.registryServer
    env: common.env
    secrets: common.secrets
    volumes: common.volumes
    volumeMounts: common.volumeMounts
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------------------------

@description('Storage account name.')
output storageAccountName string = storage.name

@description('Blob endpoint; upload prompt files to <endpoint><inputsContainer>/<inputsPrefix> to start blob-triggered runs.')
output blobEndpoint string = blobEndpoint

@description('Where runs and artifacts go (PREFPIPE_STORAGE of every job): the pipeline\'s storage.')
output runsLocation string = '${blobEndpoint}${artifactsContainerName}/${artifactsPrefix}'

@description('Container and prefix watched by the blob trigger.')
output blobTriggerLocation string = '${inputsContainerName}/${inputsPrefix}'

@description('Queue receiving Event Grid BlobCreated events.')
output eventsQueueName string = eventsQueue.name

@description('Registry login server; push the images here (az acr build --registry <name> ...).')
output registryLoginServer string = registry.properties.loginServer

@description('Registry name (az acr build --registry).')
output registryName string = registry.name

@description('Client id of the jobs\' managed identity (AZURE_CLIENT_ID).')
output identityClientId string = identity.properties.clientId

@description('Principal id of the jobs\' managed identity, for further role assignments (e.g. model storage).')
output identityPrincipalId string = identity.properties.principalId

@description('Key Vault URI; store the judge API key here (az keyvault secret set) before setting judgeApiKeySecretName.')
output keyVaultUri string = vault.properties.vaultUri

@description('Container Apps environment name.')
output environmentName string = environment.name

@description('Job names: scheduled (cron), blob (queue-triggered), manual (rerun/resume), workers (shards), trainer (GPU). Empty when deployJobs is false.')
output jobNames object = deployJobs
  ? {
      scheduled: scheduledJob!.outputs.name
      blob: blobJob!.outputs.name
      manual: manualJob!.outputs.name
      workers: workersJob!.outputs.name
      trainer: trainerJob!.outputs.name
    }
  : {}
