// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the library
// Flux, kpt and cli-utils based tools judge health with, computes for Kubernetes objects.
//
// It reads JSON from the files named on the command line, or from stdin when there are none
// (or for "-"): one object, a List (its items), or several objects one after the other. For each
// object it prints one JSON line:
//
//	{"kind":"BackendAuth","namespace":"shop","name":"shop-auth","status":"InProgress","message":"..."}
//
// status is one of InProgress, Current, Failed, Terminating, Unknown, NotFound: status.Compute's
// result, unchanged. An object status.Compute cannot judge is an error (exit code 1).
// "kstatus --version" prints the version build.sh stamps in (the cli-utils release, and a digest
// of this tool's source).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Set by build.sh (-ldflags -X main.version=...).
var version = "unknown"

type judged struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func judge(obj map[string]interface{}, out *json.Encoder) error {
	u := &unstructured.Unstructured{Object: obj}
	if items, ok := obj["items"].([]interface{}); ok && u.IsList() {
		for i, item := range items {
			m, ok := item.(map[string]interface{})
			if !ok {
				return fmt.Errorf("items[%d] of the %s is not an object", i, u.GetKind())
			}
			if err := judge(m, out); err != nil {
				return err
			}
		}
		return nil
	}
	result, err := status.Compute(u)
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out.Encode(judged{
		Kind:      u.GetKind(),
		Namespace: u.GetNamespace(),
		Name:      u.GetName(),
		Status:    result.Status.String(),
		Message:   result.Message,
	})
}

func judgeAll(name string, in io.Reader, out *json.Encoder) error {
	decoder := json.NewDecoder(bufio.NewReader(in))
	decoder.UseNumber() // as the API server's numbers: generation 1 stays an integer
	for {
		var value interface{}
		err := decoder.Decode(&value)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: not JSON: %w", name, err)
		}
		obj, ok := value.(map[string]interface{})
		if !ok {
			return fmt.Errorf("%s: expected a JSON object, got %T", name, value)
		}
		if err := judge(normalize(obj).(map[string]interface{}), out); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// normalize turns json.Number into int64 (or float64), the types unstructured expects.
func normalize(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		for key, item := range v {
			v[key] = normalize(item)
		}
		return v
	case []interface{}:
		for i, item := range v {
			v[i] = normalize(item)
		}
		return v
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}

func main() {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "--version" {
		fmt.Println(version)
		return
	}
	if len(args) == 0 {
		args = []string{"-"}
	}
	out := json.NewEncoder(os.Stdout)
	for _, name := range args {
		var in io.Reader = os.Stdin
		if name != "-" {
			file, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus:", err)
				os.Exit(1)
			}
			defer file.Close()
			in = file
		} else {
			name = "stdin"
		}
		if err := judgeAll(name, in, out); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
	}
}
