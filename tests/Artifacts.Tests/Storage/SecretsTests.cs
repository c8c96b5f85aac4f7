using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

public sealed class SecretsTests
{
    private const string Key = "c2VjcmV0LWFjY291bnQta2V5LTAxMjM0NTY3ODk=";
    private const string Signature = "Zm9vYmFyc2lnbmF0dXJl%2B%3D";

    [Theory]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" + Key + ";EndpointSuffix=core.windows.net")]
    [InlineData("AccountName=a;accountkey=" + Key)]
    [InlineData("BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2024-11-04&sp=rl&sig=" + Signature)]
    [InlineData("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=" + Key)]
    [InlineData("UseDevelopmentStorage=true")]
    [InlineData("https://a.blob.core.windows.net/runs/p?sv=2024-11-04&se=2030-01-01&sr=c&sp=rwl&sig=" + Signature)]
    [InlineData("sv=2024-11-04&ss=b&srt=co&sp=rl&sig=" + Signature)]
    [InlineData("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc")]
    [InlineData("https://user:hunter22@proxy.example.com/v1")]
    public void Find_Credential_SaysWhatKind(string text) => Assert.NotNull(Secrets.Find(text));

    [Theory]
    [InlineData("./runs")]
    [InlineData("az://runs/demo")]
    [InlineData("https://a.blob.core.windows.net/runs/demo")]
    [InlineData("http://127.0.0.1:10000/devstoreaccount1/runs")]
    [InlineData("http://user@host.example.com/v1")]
    [InlineData("design=compact; signature=none")]
    [InlineData("{prompt} is the question; a bearer of good news")]
    [InlineData("Bearer instructions apply to the carrier")]
    [InlineData("")]
    [InlineData(null)]
    public void Find_OrdinaryValue_IsNull(string? text) => Assert.Null(Secrets.Find(text));

    [Fact]
    public void Redact_ConnectionStringInAMessage_HidesTheKeyAndKeepsTheAccount()
    {
        string message = $"No valid combination of account information found in 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={Key};EndpointSuffix=core.windows.net'.";

        string redacted = Secrets.Redact(message);

        Assert.DoesNotContain(Key, redacted, StringComparison.Ordinal);
        Assert.Contains("AccountName=acct;AccountKey=<redacted>;EndpointSuffix=core.windows.net'", redacted, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET https://a.blob.core.windows.net/runs/x.parquet?sv=2024-11-04&sig=" + Signature + "&se=2030-01-01 failed", "?sv=2024-11-04&sig=<redacted>&se=2030-01-01 failed")]
    [InlineData("BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2024-11-04&sig=" + Signature + ";x=1", "SharedAccessSignature=<redacted>;x=1")]
    [InlineData("Endpoint=sb://ns/;SharedAccessKey=" + Key, "SharedAccessKey=<redacted>")]
    [InlineData("401 for Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "401 for Bearer <redacted>")]
    [InlineData("https://user:hunter22@proxy.example.com/v1", "https://user:<redacted>@proxy.example.com/v1")]
    public void Redact_EachKind_ReplacesOnlyTheSecretValue(string text, string expectedTail)
    {
        string redacted = Secrets.Redact(text);

        Assert.EndsWith(expectedTail, redacted, StringComparison.Ordinal);
        Assert.DoesNotContain(Signature, redacted, StringComparison.Ordinal);
        Assert.DoesNotContain(Key, redacted, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", redacted, StringComparison.Ordinal);
        Assert.DoesNotContain("eyJ", redacted, StringComparison.Ordinal);
    }

    [Fact]
    public void Redact_TextWithoutSecrets_IsUnchanged()
    {
        const string text = "https://a.blob.core.windows.net/runs/demo/x.parquet does not exist (design=compact)";

        Assert.Equal(text, Secrets.Redact(text));
    }
}
