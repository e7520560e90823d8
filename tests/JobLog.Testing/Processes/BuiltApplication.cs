namespace JobLog.Testing.Processes;

/// <summary>Finds the build output of an application of this repository, for a test that runs it as its own process.</summary>
public static class BuiltApplication
{
    /// <summary>
    /// The path of <paramref name="dll"/> under <c>&lt;project&gt;/bin/&lt;Configuration&gt;/&lt;framework&gt;/</c>, with the
    /// configuration and framework the calling test runs with.
    /// </summary>
    /// <param name="project">The project's folder, from the repository's root (e.g. <c>src/JobLog.Worker</c>).</param>
    /// <param name="dll">The application's assembly file name.</param>
    public static string Dll(string project, string dll)
    {
        // tests/<Tests>/bin/<Configuration>/<framework>/ → <project>/bin/<Configuration>/<framework>/
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = bin.Parent!.Name;
        var root = bin;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "JobLog.sln")))
        {
            root = root.Parent;
        }

        if (root is null)
        {
            throw new InvalidOperationException("JobLog.sln not found above " + AppContext.BaseDirectory);
        }

        var path = Path.Combine(root.FullName, project, "bin", configuration, bin.Name, dll);
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {project} first (the test project references it).", path);
    }
}
