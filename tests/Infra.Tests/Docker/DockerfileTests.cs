namespace PrefPipe.Infra.Tests.Docker;

/// <summary>
/// The Dockerfiles cannot be built here (no docker engine; the CUDA packages are not on this mirror), so these check
/// what a build would trip over first: sources that do not exist, the publish command, the user it runs as.
/// </summary>
public sealed class DockerfileTests
{
    private static string[] Lines(string name) => File.ReadAllLines(InfraPaths.Infra("docker", name));

    [Theory]
    [InlineData("Dockerfile.cpu")]
    [InlineData("Dockerfile.cuda")]
    public void Dockerfile_CopiesOnlyPathsThatExistAndTheIgnoreFileKeeps(string name)
    {
        var ignore = Lines(name + ".dockerignore").Where(l => l.StartsWith('!')).Select(l => l[1..].TrimEnd('/')).ToHashSet();
        var copies = Lines(name).Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from=", StringComparison.Ordinal)).ToList();

        Assert.NotEmpty(copies);
        foreach (var copy in copies)
        {
            var parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var source in parts[1..^1])
            {
                var path = Path.Combine(InfraPaths.RepositoryRoot, source);
                Assert.True(File.Exists(path) || Directory.Exists(path), $"{name}: '{copy}' copies {source}, which does not exist");
                Assert.True(ignore.Contains(source.TrimEnd('/')), $"{name}.dockerignore leaves out {source}");
            }
        }
    }

    [Theory]
    [InlineData("Dockerfile.cpu", "mcr.microsoft.com/dotnet/runtime-deps:${DOTNET_VERSION}")]
    [InlineData("Dockerfile.cuda", "${CUDA_IMAGE}")]
    public void Dockerfile_PublishesHostSelfContainedAndRunsAsNonRoot(string name, string runtimeBase)
    {
        var lines = Lines(name);

        Assert.Contains(lines, l => l.StartsWith("FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("dotnet publish src/Host -c Release -r linux-x64 --self-contained", StringComparison.Ordinal));
        Assert.Contains(lines, l => l == $"FROM {runtimeBase} AS runtime");
        var user = lines.Last(l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.True(user is "USER $APP_UID" or "USER 1654", user);
        Assert.Equal("ENTRYPOINT [\"prefpipe\"]", lines.Single(l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal)));
    }

    [Fact]
    public void CudaDockerfile_RestoresTheGpuBackendsAndSaysItCannotBeBuiltHere()
    {
        var text = string.Join('\n', Lines("Dockerfile.cuda"));

        Assert.Contains("-p:TorchBackend=cuda -p:OnnxBackend=gpu -o /app", text, StringComparison.Ordinal);
        Assert.Contains("CANNOT be built in this project's CI", text, StringComparison.Ordinal);
        // ONNX Runtime GPU 1.32's CUDA provider loads libcudart.so.13 / libcublasLt.so.13 and cuDNN 9 from the image.
        var image = Lines("Dockerfile.cuda").Single(l => l.StartsWith("ARG CUDA_IMAGE", StringComparison.Ordinal));
        Assert.StartsWith("ARG CUDA_IMAGE=nvidia/cuda:13.", image, StringComparison.Ordinal);
        Assert.Contains("-cudnn-runtime-", image, StringComparison.Ordinal);
    }
}
