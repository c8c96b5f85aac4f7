using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Service;
using PrefPipe.Ingest;
using PrefPipe.Ranking;
using PrefPipe.Splitter;
using PrefPipe.Trainer;
using PrefPipe.Trainer.Ppo;

namespace PrefPipe.Host.Tests.Service;

/// <summary>The host behind <c>prefpipe serve</c>: the stages' options registered through their AddXxx and checked at start.</summary>
public sealed class ServeHostTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    /// <summary>The demo pipeline on a schedule, its runs in a temporary folder.</summary>
    private static (LoadedPipeline Pipeline, string Storage) DemoPipeline()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-servehost-").FullName;
        string yaml = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "pipelines", "demo.yaml"))
            .Replace("../assets/demo", Demo, StringComparison.Ordinal)
            .Replace("${PREFPIPE_STORAGE:-../runs}", Path.Combine(storage, "runs"), StringComparison.Ordinal)
            + "\ntriggers:\n  schedule: \"0 3 * * *\"\n";
        string path = Path.Combine(storage, "demo.yaml");
        File.WriteAllText(path, yaml);
        return (PipelineLoader.Load(path, ["ranking.judge=llm", "ranking.llm.endpoint=http://127.0.0.1:9/v1", "ranking.llm.model=m",
            "ranking.llm.attempt_timeout=30s", "ingest.stop_strings=[\"\\n\\n\"]", "training.ppo.target_kl=0.1"], _ => null), storage);
    }

    private static IHost Build(LoadedPipeline pipeline) =>
        ServeHost.Build(new ServeSettings(pipeline, [], Once: false, JsonLogs: false), logging => logging.ClearProviders());

    [Fact]
    public void Build_DemoPipeline_RegistersEveryStageWithTheFilesOptions()
    {
        var (pipeline, _) = DemoPipeline();
        var d = pipeline.Definition;

        using var host = Build(pipeline);

        // What AddXxx bound from the pipeline is what the file says, option for option.
        T Bound<T>() where T : class => host.Services.GetRequiredService<IOptions<T>>().Value;
        Assert.Equal(JsonSerializer.Serialize(d.Ingest), JsonSerializer.Serialize(Bound<IngestOptions>()));
        Assert.Equal(JsonSerializer.Serialize(d.Ranking), JsonSerializer.Serialize(Bound<RankingOptions>()));
        Assert.Equal(JsonSerializer.Serialize(d.Split), JsonSerializer.Serialize(Bound<SplitterOptions>()));
        Assert.Equal(JsonSerializer.Serialize(d.Training.Dpo), JsonSerializer.Serialize(Bound<DpoTrainingOptions>()));
        Assert.Equal(JsonSerializer.Serialize(d.Training.Ppo), JsonSerializer.Serialize(Bound<PpoOptions>()));
    }

    [Fact]
    public async Task Start_BadStageOption_RefusesToStartNamingIt()
    {
        var (pipeline, storage) = DemoPipeline();
        pipeline.Definition.Ingest.Temperature = 9; // as if the file had not been checked

        using var host = Build(pipeline);
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("The field IngestOptions.Temperature must be between 0 and 5.", ex.Message, StringComparison.Ordinal);
        // Nothing started: no run, no recovery pass over the run store.
        Assert.False(Directory.Exists(Path.Combine(storage, "runs")) && Directory.EnumerateFileSystemEntries(Path.Combine(storage, "runs")).Any());
    }
}
