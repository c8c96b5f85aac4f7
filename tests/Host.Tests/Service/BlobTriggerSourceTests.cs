using PrefPipe.Artifacts.Tests.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

/// <summary>The deployed pipeline file (infra/k8s/configmap.yaml) loads and its blob trigger matches Event Grid subjects.</summary>
public sealed class BlobTriggerSourceTests
{
    private static LoadedPipeline DeployedPipeline()
    {
        string configMap = File.ReadAllText(Path.Combine(AzuriteFixture.RepoRoot(), "infra", "k8s", "configmap.yaml"));
        var stream = new YamlDotNet.RepresentationModel.YamlStream();
        stream.Load(new StringReader(configMap));
        var data = (YamlDotNet.RepresentationModel.YamlMappingNode)((YamlDotNet.RepresentationModel.YamlMappingNode)stream.Documents[0].RootNode)["data"];
        string file = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-deployed-").FullName, "pipeline.yaml");
        File.WriteAllText(file, ((YamlDotNet.RepresentationModel.YamlScalarNode)data["pipeline.yaml"]).Value);
        var env = new Dictionary<string, string>
        {
            ["PREFPIPE_STORAGE"] = "https://acct.blob.core.windows.net/artifacts/runs",
            ["PREFPIPE_PROMPTS"] = "https://acct.blob.core.windows.net/inputs/prompts/prompts.parquet",
            ["PREFPIPE_MODELS"] = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo"),
        };
        return PipelineLoader.Load(file, [], name => env.GetValueOrDefault(name));
    }

    [Fact]
    public void Open_DeployedConfigMap_MatchesEventsUnderInputsIncoming()
    {
        var pipeline = DeployedPipeline();
        var source = BlobTriggerSource.Open(pipeline.Definition.Triggers.Blob!, pipeline);

        Assert.Equal("inputs", source.Container);
        Assert.Equal("incoming/", source.BlobPrefix);
        Assert.Equal("blob-created", pipeline.Definition.Triggers.Blob!.Queue);
        Assert.Equal("day1/prompts.parquet", source.PathOf(new BlobCreatedEvent("e", "inputs", "incoming/day1/prompts.parquet", null)));
        Assert.Null(source.PathOf(new BlobCreatedEvent("e", "inputs", "prompts/prompts.parquet", null)));
        Assert.Null(source.PathOf(new BlobCreatedEvent("e", "artifacts", "incoming/x.jsonl", null)));
    }

    [Fact]
    public void PathOf_MarkerAndTemporaryFiles_AreIgnoredAsListingIgnoresThem()
    {
        var pipeline = DeployedPipeline();
        var source = BlobTriggerSource.Open(pipeline.Definition.Triggers.Blob!, pipeline);

        Assert.Null(source.PathOf(new BlobCreatedEvent("e", "inputs", "incoming/_SUCCESS", null)));
        Assert.Null(source.PathOf(new BlobCreatedEvent("e", "inputs", "incoming/day1/_SUCCESS", null)));
        Assert.Null(source.PathOf(new BlobCreatedEvent("e", "inputs", "incoming/_temporary/0/part-0000.parquet", null)));
        Assert.Null(source.PathOf(new BlobCreatedEvent("e", "inputs", "incoming/.prompts.parquet.crc", null)));
        Assert.Equal("day_1/prompts.parquet", source.PathOf(new BlobCreatedEvent("e", "inputs", "incoming/day_1/prompts.parquet", null)));
    }

    [Fact]
    public void Load_BlobTriggerWithBothContainerAndLocation_NamesTheKey()
    {
        var pipeline = DeployedPipeline();
        var ex = Assert.Throws<PipelineFileException>(() => PipelineLoader.Load(pipeline.File, ["triggers.blob.location=az://inputs/incoming"],
            name => name switch
            {
                "PREFPIPE_MODELS" => Path.Combine(AppContext.BaseDirectory, "fixtures", "demo"),
                "PREFPIPE_STORAGE" or "PREFPIPE_PROMPTS" => "https://acct.blob.core.windows.net/x/y",
                _ => null,
            }));

        Assert.True(ex.Message.Contains("exactly one of container", StringComparison.Ordinal), ex.Message);
        Assert.Contains("triggers.blob.container", ex.Message, StringComparison.Ordinal);
        Assert.Contains("exactly one of container", ex.Message, StringComparison.Ordinal);
    }
}
