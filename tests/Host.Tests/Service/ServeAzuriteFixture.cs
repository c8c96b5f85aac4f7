using Azure.Storage.Queues;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Artifacts.Tests.Storage;

namespace PrefPipe.Host.Tests.Service;

/// <summary>
/// Azurite with the queue service too (the shared fixture, linked from Artifacts.Tests), for the service's blob-created
/// queue; sets <c>PREFPIPE_BLOB_CONNECTION_STRING</c> to it for the stores and queues the service opens, and clears it at the end.
/// </summary>
public sealed class ServeAzuriteFixture : AzuriteFixture
{
    protected override bool WithQueue => true;

    public QueueClient Queue(string name) => new(ConnectionString, name);

    protected override async Task OnReadyAsync(CancellationToken cancellationToken)
    {
        await new QueueServiceClient(ConnectionString).GetPropertiesAsync(cancellationToken);
        Environment.SetEnvironmentVariable(ArtifactStores.ConnectionStringVariable, ConnectionString);
    }

    protected override void OnStopping() => Environment.SetEnvironmentVariable(ArtifactStores.ConnectionStringVariable, null);
}

[CollectionDefinition(Name)]
public sealed class ServeAzuriteCollection : ICollectionFixture<ServeAzuriteFixture>
{
    public const string Name = "azurite-serve";
}
