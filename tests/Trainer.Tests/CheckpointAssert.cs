using System.Text.Json;

namespace PrefPipe.Trainer.Tests;

/// <summary>What a checkpoint folder must look like for tools that load it as it is.</summary>
internal static class CheckpointAssert
{
    /// <summary>
    /// The folder's *.safetensors are exactly the model's (model.safetensors, or the shards model.safetensors.index.json
    /// names: vLLM loads every *.safetensors of a folder without an index), beside them only the model's config, generation
    /// config, tokenizer files and trainer_state.json; the resume state is in <see cref="Checkpoint.StateFolder"/>.
    /// </summary>
    public static void HoldsOnlyTheModel(string checkpoint)
    {
        var safetensors = Directory.EnumerateFiles(checkpoint, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        string index = Path.Combine(checkpoint, "model.safetensors.index.json");
        List<string?> expected = File.Exists(index)
            ? JsonDocument.Parse(File.ReadAllText(index)).RootElement.GetProperty("weight_map").EnumerateObject()
                .Select(p => p.Value.GetString()).Distinct().Order(StringComparer.Ordinal).ToList()
            : ["model.safetensors"];
        Assert.Equal(expected, safetensors);

        string[] allowed = ["config.json", "generation_config.json", "model.safetensors.index.json", "trainer_state.json",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json"];
        Assert.All(Directory.EnumerateFiles(checkpoint).Select(Path.GetFileName).Where(f => !f!.EndsWith(".safetensors", StringComparison.Ordinal)),
            f => Assert.Contains(f, allowed));
        Assert.Equal([Checkpoint.StateFolder], Directory.EnumerateDirectories(checkpoint).Select(Path.GetFileName));
        Assert.True(File.Exists(Path.Combine(checkpoint, Checkpoint.StateFolder, "optimizer.safetensors")));
    }
}
