using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

public sealed class LocalArtifactStoreTests : ArtifactStoreContractTests
{
    protected override IArtifactStore Store { get; } = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-local-store-").FullName);
}
