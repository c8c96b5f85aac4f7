using Azure.Storage.Sas;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

[Collection(AzuriteCollection.Name)]
public sealed class BlobArtifactStoreTests(AzuriteFixture azurite) : ArtifactStoreContractTests
{
    private const string ContainerName = "contract";

    // Each test gets its own prefix in a shared container: the store's prefix keeps them apart.
    private readonly string _prefix = $"t-{Guid.NewGuid():N}/root";

    protected override IArtifactStore Store => field ??= new BlobArtifactStore(azurite.Container(ContainerName), _prefix);

    private static Func<string, string?> Env(string? connection, string? account = null) => name => name switch
    {
        ArtifactStores.ConnectionStringVariable => connection,
        ArtifactStores.AccountUrlVariable => account,
        _ => null,
    };

    [Fact]
    public async Task Location_WithPrefix_IsTheContainerUrlAndPrefixWithoutSecrets()
    {
        Assert.Equal($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/{ContainerName}/{_prefix}", Store.Location);
        Assert.Equal($"{Store.Location}/a/b.parquet", Store.UriOf("a/b.parquet"));
        await Store.CommitAsync("a/b.parquet", WriteTemp("x"));
        var container = azurite.Container(ContainerName);
        Assert.True(await container.GetBlobClient($"{_prefix}/a/b.parquet").ExistsAsync());
    }

    [Fact]
    public async Task Open_AzUriWithConnectionString_WritesUnderTheContainerPrefix()
    {
        var store = ArtifactStores.Open("az://opened/runs/2025", environment: Env(azurite.ConnectionString));
        await store.CommitAsync("r/x.txt", WriteTemp("via az://"));

        Assert.Equal($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/opened/runs/2025", store.Location);
        Assert.DoesNotContain("AccountKey", store.ToString(), StringComparison.Ordinal);
        Assert.True(await azurite.Container("opened").GetBlobClient("runs/2025/r/x.txt").ExistsAsync());
    }

    [Fact]
    public async Task Open_PathStyleUrlWithSas_AuthenticatesWithTheSasAndNeverShowsIt()
    {
        var container = azurite.Container("sas-container");
        await container.CreateIfNotExistsAsync();
        var sas = container.GenerateSasUri(BlobContainerSasPermissions.All, DateTimeOffset.UtcNow.AddHours(1));
        string location = $"http://127.0.0.1:{azurite.Port}/devstoreaccount1/sas-container/pre{sas.Query}";

        var store = ArtifactStores.Open(location, environment: Env(null));
        await store.CommitAsync("f.txt", WriteTemp("with sas"));

        Assert.True(await container.GetBlobClient("pre/f.txt").ExistsAsync());
        Assert.Equal($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/sas-container/pre", store.Location);
        Assert.DoesNotContain("sig=", store.UriOf("f.txt"), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Open_UrlOfTheConnectionStringsAccount_UsesTheConnectionString()
    {
        var store = ArtifactStores.Open($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/by-url/pre", environment: Env(azurite.ConnectionString));
        await store.CommitAsync("f.txt", WriteTemp("via connection string"));

        Assert.True(await azurite.Container("by-url").GetBlobClient("pre/f.txt").ExistsAsync());
    }

    [Fact]
    public void Open_UrlOfAnotherAccount_IsNotRedirectedToTheConnectionStringsAccount()
    {
        // A connection string for the local emulator must not silently send https://acct… traffic to it.
        var store = ArtifactStores.Open("https://acct.blob.core.windows.net/runs/r1", environment: Env(azurite.ConnectionString));

        Assert.Equal("https://acct.blob.core.windows.net/runs/r1", store.Location);
        Assert.Equal("https://acct.blob.core.windows.net/runs/r1/x.parquet", store.UriOf("x.parquet"));
    }

    [Fact]
    public void Open_AzUriWithoutCredentials_NamesTheVariablesToSet()
    {
        var ex = Assert.Throws<ArgumentException>(() => ArtifactStores.Open("az://runs", environment: Env(null)));

        Assert.Contains(ArtifactStores.ConnectionStringVariable, ex.Message, StringComparison.Ordinal);
        Assert.Contains(ArtifactStores.AccountUrlVariable, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("az://UPPER/x")]
    [InlineData("az://ab")]
    [InlineData("az://runs/../escape")]
    [InlineData("https://acct.blob.core.windows.net/")]
    public void Open_MalformedBlobLocations_AreRefused(string location) =>
        Assert.Throws<ArgumentException>(() => ArtifactStores.Open(location, environment: Env("UseDevelopmentStorage=true")));

    private static string WriteTemp(string text)
    {
        string path = Path.GetTempFileName();
        File.WriteAllText(path, text);
        return path;
    }
}
