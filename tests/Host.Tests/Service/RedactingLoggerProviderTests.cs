using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

public sealed class RedactingLoggerProviderTests
{
    private const string Key = "c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5YWJjZGVmZ2hpams=";

    [Fact]
    public async Task Log_SecretInMessageAndException_WrittenRedacted()
    {
        string connection = $"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={Key};EndpointSuffix=core.windows.net";
        string written;
        await using (var capture = await StderrCapture.StartAsync())
        {
            var services = new ServiceCollection().AddLogging(b =>
            {
                b.AddSimpleConsole(o => o.SingleLine = true).AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
                RedactingLoggerProvider.Wrap(b);
            }).BuildServiceProvider();
            var logger = services.GetRequiredService<ILogger<RedactingLoggerProviderTests>>();
            logger.LogError(new FormatException($"No valid combination of account information found in '{connection}'."), "Opening {Storage} failed", $"https://acct.blob.core.windows.net/c?sv=2024-01-01&sig=abcDEF123456789%2Bxyz");
            await services.DisposeAsync(); // flushes the console queue
            written = capture.ToString();
        }

        Assert.Contains("Opening https://acct.blob.core.windows.net/c?", written, StringComparison.Ordinal);
        Assert.Contains("AccountKey=<redacted>", written, StringComparison.Ordinal);
        Assert.DoesNotContain(Key, written, StringComparison.Ordinal);
        Assert.DoesNotContain("abcDEF123456789", written, StringComparison.Ordinal);
        Assert.Contains(nameof(FormatException), written, StringComparison.Ordinal);
    }
}
