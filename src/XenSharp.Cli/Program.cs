Console.Error.WriteLine("xl: not yet"); return 1;
