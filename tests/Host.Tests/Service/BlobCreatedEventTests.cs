using System.Text;
using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

public sealed class BlobCreatedEventTests
{
    private const string Event = """
        {"topic":"/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
         "subject":"/blobServices/default/containers/inputs/blobs/incoming/day 1/prompts.parquet",
         "eventType":"Microsoft.Storage.BlobCreated","id":"e1",
         "data":{"api":"PutBlob","eTag":"0x8DC1","blobType":"BlockBlob"},"dataVersion":"","metadataVersion":"1","eventTime":"2026-11-23T03:00:00Z"}
        """;

    [Fact]
    public void TryParse_Base64EventGridMessage_ReadsContainerBlobAndETag()
    {
        var e = BlobCreatedEvent.TryParse(Convert.ToBase64String(Encoding.UTF8.GetBytes(Event)), out _);

        Assert.Equal(new BlobCreatedEvent("e1", "inputs", "incoming/day 1/prompts.parquet", "0x8DC1"), e);
    }

    [Fact]
    public void TryParse_PlainCloudEventArray_ReadsTheSingleEvent()
    {
        string cloud = "[" + Event.Replace("\"eventType\"", "\"type\"", StringComparison.Ordinal) + "]";

        Assert.Equal("incoming/day 1/prompts.parquet", BlobCreatedEvent.TryParse(cloud, out _)?.BlobName);
    }

    [Fact]
    public void TryParse_BlobDeleted_ReturnsNullWithTheReason()
    {
        var e = BlobCreatedEvent.TryParse(Event.Replace("BlobCreated", "BlobDeleted", StringComparison.Ordinal), out string reason);

        Assert.Null(e);
        Assert.Contains("Microsoft.Storage.BlobDeleted", reason, StringComparison.Ordinal);
    }
}
