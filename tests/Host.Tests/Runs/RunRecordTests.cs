using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>run.json is the one record of a run: lineage, state and the counts that prove nothing was lost.</summary>
public sealed class RunRecordTests
{
    private static readonly string Sha = new('a', 64);

    private static StageRecord Completed(PipelineStage name, params ArtifactRecord[] outputs) =>
        new() { Name = name, Status = StageStatus.Completed, RowsIn = 1, RowsOut = 1, Outputs = [.. outputs] };

    [Fact]
    public async Task SaveAsync_ThenLoadAsync_RoundTripsStagesStatusesAndSchemaVersions()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-runrecord-").FullName);
        var candidates = await ParquetArtifacts.WriteAsync(store, "r1/ingest/candidates.parquet", [new CandidateRow { PromptId = "p" }]);
        var run = new RunRecord
        {
            RunId = "r1", Plan = TrainingPlan.Dpo, Status = RunStatus.Completed,
            Stages = [Completed(PipelineStage.Ingest, ArtifactRecord.From("candidates", candidates)), Completed(PipelineStage.Dpo, new ArtifactRecord("model", "/m", 0, Sha))],
        };

        await run.SaveAsync(store, CancellationToken.None);
        var saved = await RunRecord.LoadAsync(store, "r1", CancellationToken.None);
        string json = await File.ReadAllTextAsync(Path.Combine(store.Location, "r1", "run.json"));

        Assert.Equal(CandidateRow.SchemaVersion, saved!.Stage(PipelineStage.Ingest).Outputs.Single().SchemaVersion);
        Assert.Equal(0, saved.Stage(PipelineStage.Dpo).Outputs.Single().SchemaVersion); // a model is not a row artifact
        Assert.Equal(TrainingPlan.Dpo, saved.Plan);
        Assert.Equal(RunStatus.Completed, saved.Status);
        Assert.Contains("\"name\": \"dpo\"", json, StringComparison.Ordinal);
        Assert.Contains("\"status\": \"completed\"", json, StringComparison.Ordinal);
        Assert.Contains("\"plan\": \"dpo\"", json, StringComparison.Ordinal);
        Assert.Contains($"\"format_version\": {RunRecord.CurrentFormat}", json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SaveAsync_CompletedStageWhoseCountsDoNotAddUp_IsRefusedNamingTheStage()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-runrecord-").FullName);
        var run = new RunRecord { RunId = "r2", Stages = [new StageRecord { Name = PipelineStage.Split, Status = StageStatus.Completed, RowsIn = 10, RowsOut = 7, RowsRejected = 2, Method = "pairs = easy + difficult + dropped" }] };

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => run.SaveAsync(store, CancellationToken.None));

        Assert.Contains("stage split", ex.Message, StringComparison.Ordinal);
        Assert.Contains("rows_in 10 != rows_out 7 + rows_rejected 2", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(store.Location, "r2", "run.json")));
    }

    [Fact]
    public async Task SaveAsync_MalformedSha_IsRefusedNamingTheArtifact()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-runrecord-").FullName);
        var run = new RunRecord { RunId = "r3", Stages = [Completed(PipelineStage.Rank, new ArtifactRecord("preferences", "x/preferences.parquet", 1, "ABC"))] };

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => run.SaveAsync(store, CancellationToken.None));

        Assert.Contains("x/preferences.parquet has sha256 'ABC'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_RunJsonFromBeforeTheStagesWereRenamed_ReadsTrainAsDpo()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-runrecord-").FullName);
        Directory.CreateDirectory(Path.Combine(store.Location, "old"));
        await File.WriteAllTextAsync(Path.Combine(store.Location, "old", "run.json"),
            "{\"run_id\":\"old\",\"status\":\"completed\",\"plan\":\"mpo\",\"stages\":[{\"name\":\"train\",\"status\":\"completed\",\"key\":\"k\"}]}");

        var run = await RunRecord.LoadAsync(store, "old", CancellationToken.None);

        Assert.Equal(PipelineStage.Dpo, run!.Stages.Single().Name);
        Assert.Equal(StageStatus.Completed, run.Stages.Single().Status);
    }

    [Fact]
    public async Task LoadAsync_NewerFormat_IsRefusedNamingTheFile()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-runrecord-").FullName);
        Directory.CreateDirectory(Path.Combine(store.Location, "new"));
        await File.WriteAllTextAsync(Path.Combine(store.Location, "new", "run.json"), "{\"format_version\":99,\"run_id\":\"new\",\"stages\":[]}");

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => RunRecord.LoadAsync(store, "new", CancellationToken.None));

        Assert.Contains("run.json: format_version 99", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InputRecords_MpoPlan_FollowTheStageTable()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-runrecord-").FullName;
        string evalFile = Path.Combine(root, "eval.jsonl");
        await File.WriteAllTextAsync(evalFile, "{\"prompt\":\"x\"}\n");
        var easy = new ArtifactRecord("easy", "r/split/easy.parquet", 1, Sha, PreferenceRow.SchemaVersion);
        var difficult = new ArtifactRecord("difficult", "r/split/difficult.parquet", 1, Sha, PreferenceRow.SchemaVersion);
        var dpoModel = new ArtifactRecord("model", Path.Combine(root, "dpo-model"), 0, new string('b', 64));
        var ppoModel = new ArtifactRecord("model", Path.Combine(root, "ppo-model"), 0, new string('c', 64));
        var run = new RunRecord
        {
            RunId = "r", Plan = TrainingPlan.Mpo,
            Stages = [new() { Name = PipelineStage.Ingest }, new() { Name = PipelineStage.Rank }, Completed(PipelineStage.Split, easy, difficult),
                Completed(PipelineStage.Dpo, dpoModel), Completed(PipelineStage.Ppo, ppoModel), new() { Name = PipelineStage.Evaluate }],
        };
        var definition = new PipelineDefinition { Training = { Plan = TrainingPlan.Mpo }, Inputs = { Prompts = "prompts.jsonl", EvalPrompts = "eval.jsonl" }, Models = { Policy = "policy", Reward = "reward" } };
        var pipeline = new LoadedPipeline(definition, Path.Combine(root, "p.yaml"), root, "");

        Assert.Equal([easy], StageTable.InputRecords(pipeline, run, PipelineStage.Dpo));
        Assert.Equal([difficult, dpoModel], StageTable.InputRecords(pipeline, run, PipelineStage.Ppo));
        var evaluate = StageTable.InputRecords(pipeline, run, PipelineStage.Evaluate);
        Assert.Equal([evalFile, ppoModel.Uri], evaluate.Select(i => i.Uri));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(evalFile))), evaluate[0].Sha256);
    }
}
